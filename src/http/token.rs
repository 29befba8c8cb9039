//! POST /token (RFC 6749 §3.2, §4.3, §4.4, §5): form in, token or OAuth error out, never cached. Uses: domain.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::auth::client_credentials;
use super::form::OAuthForm;
use super::{ApiError, AppState};
use crate::domain::token::Target;
use crate::domain::{AuthMethod, Error};

pub async fn post(
    State(app): State<AppState>,
    headers: HeaderMap,
    OAuthForm(params): OAuthForm,
) -> Response {
    let result = async {
        let grant_type = params.require("grant_type")?.to_owned();
        let credentials = client_credentials(&headers, &params)?;
        let basic = credentials.method == AuthMethod::Basic;
        let tokens = async {
            let client = app.issuer.authenticate_client(&credentials).await?;
            let scope = params.get("scope");
            let target = Target {
                resource: params.get("resource"),
                audience: params.get("audience"),
            };
            match grant_type.as_str() {
                "client_credentials" => app.issuer.client_credentials(&client, scope, target).await,
                "password" => {
                    let username = params.require("username")?;
                    let password = params.require("password")?;
                    app.issuer
                        .password(&client, username, password, scope, target)
                        .await
                }
                _ => Err(Error::UnsupportedGrantType),
            }
        }
        .await
        .map_err(|e| ApiError::from(e).with_basic_challenge(basic))?;
        Ok::<_, ApiError>(tokens)
    }
    .await;
    let mut response = match result {
        Ok(tokens) => Json(tokens).into_response(),
        Err(error) => error.into_response(),
    };
    // RFC 6749 §5.1: token responses, and their errors, are never cached.
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}
