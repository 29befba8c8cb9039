//! Client authentication at the edge (RFC 6749 §2.3.1): HTTP Basic with form-encoded id and secret, or `client_id`/`client_secret` in the form, never both; the [`ClientAuthorization`] extractor (an OAuth form and its authenticated client) and [`AdminClient`]. Uses: domain.

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use secrecy::SecretString;

use super::form::{FormOrJson, OAuthForm, Params};
use super::source::SourceAddr;
use super::{ApiError, AppState};
use crate::domain::{AuthMethod, ClientCredentials, Error};
use crate::model::Client;

/// The parameters of one OAuth endpoint, `client_secret_post`'s `client_id` and
/// `client_secret` among them.
pub trait ClientForm: Sized {
    /// POST /refresh also takes its parameters as a JSON object of strings.
    const JSON: bool = false;
    /// POST /revoke: with HTTP Basic, a form `client_id` is the admin selector, not a second
    /// statement of the caller's identity.
    const CLIENT_ID_SELECTS: bool = false;

    /// The typed form. It may refuse only what its endpoint checks before the client
    /// (`grant_type`); everything else is checked after authentication.
    fn from_params(params: Params) -> Result<Self, Error>;

    /// The form's `client_id` and `client_secret`.
    fn client_fields(&self) -> (Option<&str>, Option<&str>);
}

/// An OAuth form with the client that sent it, authenticated: HTTP Basic or the form's
/// credentials (RFC 6749 §2.3.1), one method only.
pub struct ClientAuthorization<F> {
    pub client: Arc<Client>,
    pub form: F,
    /// HTTP Basic was used, so a later 401 carries the challenge (RFC 6749 §5.2).
    pub basic: bool,
}

impl<F> ClientAuthorization<F> {
    /// An error found after authentication, as the endpoint answers it.
    pub fn refuse(&self, error: Error) -> ApiError {
        ApiError::from(error).with_basic_challenge(self.basic)
    }
}

/// Why [`ClientAuthorization`] refused a request.
#[derive(Debug)]
pub enum Rejection {
    /// The body is not a readable form (content type, size, encoding, a repeated parameter).
    Body(ApiError),
    /// A parameter checked before the client, the credentials, or the client's authentication:
    /// the endpoint's own answer, so the token endpoints mark it uncacheable as theirs.
    Client(ApiError),
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        match self {
            Self::Body(error) | Self::Client(error) => error.into_response(),
        }
    }
}

impl<F: ClientForm + Send> FromRequest<AppState> for ClientAuthorization<F> {
    type Rejection = Rejection;

    async fn from_request(request: Request, app: &AppState) -> Result<Self, Self::Rejection> {
        // Parsed now, but reported only after the body and the form's own checks, as before.
        let basic = basic(request.headers());
        let source = SourceAddr::of(request.headers(), request.extensions(), app);
        let params = if F::JSON {
            FormOrJson::from_request(request, app)
                .await
                .map(|FormOrJson(p)| p)
        } else {
            OAuthForm::from_request(request, app)
                .await
                .map(|OAuthForm(p)| p)
        }
        .map_err(Rejection::Body)?;
        let form = F::from_params(params).map_err(|e| Rejection::Client(e.into()))?;
        let (form_id, form_secret) = form.client_fields();
        let credentials = credentials(basic, form_id, form_secret, F::CLIENT_ID_SELECTS)
            .map_err(Rejection::Client)?;
        let basic = credentials.method == AuthMethod::Basic;
        let client = app
            .issuer
            .authenticate_client(&credentials, source.0)
            .await
            .map_err(|e| Rejection::Client(ApiError::from(e).with_basic_challenge(basic)))?;
        Ok(Self {
            client,
            form,
            basic,
        })
    }
}

/// The credentials a request presents: the Basic header (already parsed) or the form's.
fn credentials(
    basic: Result<Option<(String, SecretString)>, ApiError>,
    form_id: Option<&str>,
    form_secret: Option<&str>,
    client_id_is_selector: bool,
) -> Result<ClientCredentials, ApiError> {
    if let Some((id, secret)) = basic? {
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
        let source = SourceAddr::of(&parts.headers, &parts.extensions, app);
        let client = app
            .issuer
            .authenticate_client(&credentials, source.0)
            .await
            .map_err(|e| ApiError::from(e).with_basic_challenge(true))?;
        if !client.is_admin {
            return Err(Error::AccessDenied.into());
        }
        Ok(Self(client))
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;
    use secrecy::ExposeSecret;

    use super::*;

    fn header(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    fn basic_of(id: &str, secret: &str) -> HeaderMap {
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
        header(&format!("Basic {encoded}"))
    }

    #[test]
    fn basic_halves_are_form_decoded() {
        let (id, secret) = basic(&basic_of("my+client%21", "s%3Acret"))
            .unwrap()
            .unwrap();
        assert_eq!(id, "my client!");
        assert_eq!(secret.expose_secret(), "s:cret");
        assert!(basic(&HeaderMap::new()).unwrap().is_none());
    }

    #[test]
    fn a_malformed_header_is_invalid_client_with_a_challenge() {
        for value in ["Bearer abc", "Basic", "Basic !!!", "Basic Og=="] {
            let error = basic(&header(value)).unwrap_err();
            assert_eq!(error.code(), "invalid_client", "{value}");
            let response = error.into_response();
            assert!(response.headers().contains_key(header::WWW_AUTHENTICATE));
        }
    }

    #[test]
    fn one_method_and_one_identity() {
        let both = credentials(basic(&basic_of("a", "s")), Some("a"), Some("s"), false);
        assert_eq!(both.unwrap_err().code(), "invalid_request");
        let other = credentials(basic(&basic_of("a", "s")), Some("b"), None, false);
        assert_eq!(other.unwrap_err().code(), "invalid_request");
        // POST /revoke: with Basic, a different form client_id is a selector.
        let selector = credentials(basic(&basic_of("a", "s")), Some("b"), None, true).unwrap();
        assert_eq!(
            (selector.client_id.as_str(), selector.method),
            ("a", AuthMethod::Basic)
        );
        let none = credentials(Ok(None), None, Some("s"), false);
        assert_eq!(none.unwrap_err().code(), "invalid_client");
        let post = credentials(Ok(None), Some("a"), Some("s"), false).unwrap();
        assert_eq!(post.method, AuthMethod::Post);
        let public = credentials(Ok(None), Some("a"), None, false).unwrap();
        assert_eq!(public.method, AuthMethod::None);
    }
}
