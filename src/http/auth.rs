//! Client authentication at the edge (RFC 6749 §2.3.1): HTTP Basic with form-encoded id and secret, or `client_id`/`client_secret` in the form, never both. Uses: domain.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use base64::Engine;
use secrecy::SecretString;

use super::form::Params;
use super::{ApiError, AppState};
use crate::domain::{AuthMethod, ClientCredentials, Error};
use crate::model::Client;

/// The credentials a request presents, wherever they are.
pub fn client_credentials(
    headers: &HeaderMap,
    params: &Params,
) -> Result<ClientCredentials, ApiError> {
    credentials(headers, params, false)
}

/// As [`client_credentials`], for POST /revoke: with HTTP Basic, a form `client_id` is the
/// admin selector, not a second statement of the caller's identity.
pub fn revocation_credentials(
    headers: &HeaderMap,
    params: &Params,
) -> Result<ClientCredentials, ApiError> {
    credentials(headers, params, true)
}

fn credentials(
    headers: &HeaderMap,
    params: &Params,
    client_id_is_selector: bool,
) -> Result<ClientCredentials, ApiError> {
    let form_id = params.get("client_id");
    let form_secret = params.get("client_secret");
    if let Some((id, secret)) = basic(headers)? {
        if form_secret.is_some() {
            return Err(
                Error::invalid_request("use one client authentication method, not two").into(),
            );
        }
        if !client_id_is_selector && form_id.is_some_and(|form_id| form_id != id) {
            return Err(
                Error::invalid_request("client_id differs from the authenticated client").into(),
            );
        }
        return Ok(ClientCredentials {
            client_id: id,
            secret: Some(secret),
            method: AuthMethod::Basic,
        });
    }
    let Some(client_id) = form_id else {
        return Err(ApiError::from(Error::InvalidClient));
    };
    Ok(ClientCredentials {
        client_id: client_id.to_owned(),
        secret: form_secret.map(|s| SecretString::from(s.to_owned())),
        method: if form_secret.is_some() {
            AuthMethod::Post
        } else {
            AuthMethod::None
        },
    })
}

/// `Authorization: Basic` credentials, each half form-decoded (RFC 6749 §2.3.1).
fn basic(headers: &HeaderMap) -> Result<Option<(String, SecretString)>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let malformed = || ApiError::from(Error::InvalidClient).with_basic_challenge(true);
    let value = value.to_str().map_err(|_| malformed())?;
    let Some((scheme, encoded)) = value.split_once(' ') else {
        return Err(malformed());
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(malformed());
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
    let id = form_decode(id).ok_or_else(malformed)?;
    let secret = form_decode(secret).ok_or_else(malformed)?;
    if id.is_empty() {
        return Err(malformed());
    }
    Ok(Some((id, SecretString::from(secret))))
}

fn form_decode(text: &str) -> Option<String> {
    percent_encoding::percent_decode_str(&text.replace('+', " "))
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

/// An authenticated admin client (HTTP Basic): 401 without valid credentials, 403 for a
/// client that is not an admin.
pub struct AdminClient(pub Arc<Client>);

impl FromRequestParts<AppState> for AdminClient {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some((client_id, secret)) = basic(&parts.headers)? else {
            return Err(ApiError::from(Error::InvalidClient).with_basic_challenge(true));
        };
        let credentials = ClientCredentials {
            client_id,
            secret: Some(secret),
            method: AuthMethod::Basic,
        };
        let client = app
            .issuer
            .authenticate_client(&credentials)
            .await
            .map_err(|e| ApiError::from(e).with_basic_challenge(true))?;
        if !client.is_admin {
            return Err(Error::AccessDenied.into());
        }
        Ok(Self(client))
    }
}
