//! POST /token (RFC 6749 §3.2, §4.3, §4.4, §5, §6) and POST /refresh: parameters in, token or OAuth error out, never cached. Uses: domain.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::auth::client_credentials;
use super::form::{FormOrJson, OAuthForm, Params};
use super::{ApiError, AppState};
use crate::domain::token::{Target, TokenResponse};
use crate::domain::{AuthMethod, Error};

pub async fn post(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    OAuthForm(params): OAuthForm,
) -> Response {
    let result = match params.require("grant_type") {
        Ok(grant_type) => grant(&app, peer, &headers, &params, grant_type).await,
        Err(error) => Err(error.into()),
    };
    respond(result)
}

/// POST /refresh: the refresh_token grant, its body a form or a JSON object (CONTRACT: POST /refresh).
pub async fn refresh(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    FormOrJson(params): FormOrJson,
) -> Response {
    respond(grant(&app, peer, &headers, &params, "refresh_token").await)
}

async fn grant(
    app: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    params: &Params,
    grant_type: &str,
) -> Result<TokenResponse, ApiError> {
    let credentials = client_credentials(headers, params)?;
    let basic = credentials.method == AuthMethod::Basic;
    async {
        let client = app.issuer.authenticate_client(&credentials).await?;
        let scope = params.get("scope");
        let target = Target {
            resource: params.get("resource"),
            audience: params.get("audience"),
        };
        match grant_type {
            "client_credentials" => app.issuer.client_credentials(&client, scope, target).await,
            "password" => {
                let username = params.require("username")?;
                let password = params.require("password")?;
                app.issuer
                    .password(&client, username, password, scope, target)
                    .await
            }
            "refresh_token" => {
                let token = params.require("refresh_token")?;
                let source = peer.ip().to_string();
                app.issuer
                    .refresh(&client, token, scope, target, Some(&source))
                    .await
            }
            _ => Err(Error::UnsupportedGrantType),
        }
    }
    .await
    .map_err(|e| ApiError::from(e).with_basic_challenge(basic))
}

/// RFC 6749 §5.1: token responses, and their errors, are never cached.
fn respond(result: Result<TokenResponse, ApiError>) -> Response {
    let mut response = match result {
        Ok(tokens) => Json(tokens).into_response(),
        Err(error) => {
            metrics::counter!(crate::metrics::TOKEN_ERRORS, "error" => error.code()).increment(1);
            error.into_response()
        }
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}
