//! POST /token (RFC 6749 §3.2, §4.3, §4.4, §5, §6) and POST /refresh: parameters in, token or OAuth error out, never cached. Uses: domain.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::auth::client_credentials;
use super::form::{FormOrJson, OAuthForm, Params};
use super::openapi::{ErrorBody, RefreshRequest, TokenRequest};
use super::{ApiError, AppState};
use crate::domain::token::{Target, TokenResponse};
use crate::domain::{AuthMethod, Error};

/// The token endpoint (RFC 6749 §3.2): `client_credentials`, `password` and `refresh_token`.
#[utoipa::path(
    post, path = "/token", tag = "oauth", operation_id = "token",
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    security((), ("client_secret_basic" = [])),
    responses(
        (status = 200, description = "An access token (and, for password and refresh, a refresh token)", body = TokenResponse, headers(("cache-control" = String, description = "no-store"), ("pragma" = String, description = "no-cache"))),
        (status = 400, description = "Malformed, missing or repeated parameter, or an OAuth error (RFC 6749 §5.2)", body = ErrorBody), (status = 401, description = "Client authentication failed (`invalid_client`); `WWW-Authenticate: Basic` when Basic was tried", body = ErrorBody, headers(("www-authenticate" = String))), (status = 413, description = "The body is larger than 64 KiB", body = ErrorBody), (status = 429, description = "Too many failed attempts (`slow_down`)", body = ErrorBody, headers(("retry-after" = String))), (status = 503, description = "The database is not answering, or too many logins at once (`temporarily_unavailable`)", body = ErrorBody, headers(("retry-after" = String))),
    )
)]
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
#[utoipa::path(
    post, path = "/refresh", tag = "oauth",
    request_body(content(
        (RefreshRequest = "application/json"),
        (RefreshRequest = "application/x-www-form-urlencoded"),
    )),
    security((), ("client_secret_basic" = [])),
    responses(
        (status = 200, description = "A fresh access token and the successor refresh token", body = TokenResponse, headers(("cache-control" = String, description = "no-store"), ("pragma" = String, description = "no-cache"))),
        (status = 400, description = "Malformed, missing or repeated parameter, or an OAuth error (RFC 6749 §5.2)", body = ErrorBody), (status = 401, description = "Client authentication failed (`invalid_client`); `WWW-Authenticate: Basic` when Basic was tried", body = ErrorBody, headers(("www-authenticate" = String))), (status = 413, description = "The body is larger than 64 KiB", body = ErrorBody), (status = 503, description = "The database is not answering, or too many logins at once (`temporarily_unavailable`)", body = ErrorBody, headers(("retry-after" = String))),
    )
)]
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
