//! POST /revoke (RFC 7009, plus admin selectors), POST /introspect (RFC 7662) and GET /admin/audit. Uses: domain.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::auth::{AdminClient, client_credentials, revocation_credentials};
use super::form::OAuthForm;
use super::openapi::{
    AuditEvents, ErrorBody, IntrospectRequest, Introspection, RevokeAnswer, RevokeRequest,
};
use super::{ApiError, AppState};
use crate::domain::revoke::Selector;
use crate::domain::{AuthMethod, Error};
use crate::model::AuditFilter;

/// RFC 7009 token revocation, and the admin selectors.
#[utoipa::path(
    post, path = "/revoke", tag = "oauth",
    request_body(content = RevokeRequest, content_type = "application/x-www-form-urlencoded"),
    security((), ("client_secret_basic" = [])),
    responses(
        (status = 200, description = "With `token`: `{}`, also for unknown, invalid or another client's tokens (RFC 7009 §2.2). With a selector: a summary of what was revoked", body = RevokeAnswer),
        (status = 400, description = "Malformed, missing or repeated parameter, or an OAuth error (RFC 6749 §5.2)", body = ErrorBody), (status = 401, description = "Client authentication failed (`invalid_client`); `WWW-Authenticate: Basic` when Basic was tried", body = ErrorBody, headers(("www-authenticate" = String))), (status = 403, description = "Authenticated, but not allowed (`access_denied`)", body = ErrorBody), (status = 404, description = "No such client, user or key (`not_found`)", body = ErrorBody), (status = 409, description = "Conflicts with the current state (`conflict`)", body = ErrorBody), (status = 413, description = "The body is larger than 64 KiB", body = ErrorBody), (status = 503, description = "The database is not answering, or too many logins at once (`temporarily_unavailable`)", body = ErrorBody, headers(("retry-after" = String))),
    )
)]
pub async fn revoke(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    OAuthForm(params): OAuthForm,
) -> Result<Response, ApiError> {
    let credentials = revocation_credentials(&headers, &params)?;
    let basic = credentials.method == AuthMethod::Basic;
    let source = peer.ip().to_string();
    async {
        let caller = app.issuer.authenticate_client(&credentials).await?;
        let selectors = [
            params
                .get("subject")
                .map(|v| Selector::Subject(v.to_owned())),
            params
                .get("session_id")
                .map(|v| Selector::SessionId(v.to_owned())),
            params.get("kid").map(|v| Selector::Kid(v.to_owned())),
        ];
        // `client_id` doubles as client_secret_post's identifier: it selects only when the
        // caller authenticated with Basic.
        let client_selector = if basic && params.get("token").is_none() {
            params
                .get("client_id")
                .map(|v| Selector::ClientId(v.to_owned()))
        } else {
            None
        };
        let mut chosen: Vec<Selector> = selectors
            .into_iter()
            .flatten()
            .chain(client_selector)
            .collect();
        let disable = match params.get("disable") {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => return Err(Error::invalid_request("disable must be true or false")),
        };
        match (params.get("token"), chosen.len()) {
            (Some(token), 0) => {
                if disable {
                    return Err(Error::invalid_request(
                        "disable applies to subject and client_id only",
                    ));
                }
                app.issuer
                    .revoke_token(&caller, token, Some(&source))
                    .await?;
                // RFC 7009 §2.2: 200 whether or not there was anything to revoke; the client
                // ignores the body, an empty object here, so every answer is JSON.
                Ok(Json(serde_json::json!({})).into_response())
            }
            (None, 1) => {
                if !caller.is_admin {
                    return Err(Error::AccessDenied);
                }
                let selector = chosen.pop().expect("one selector");
                let summary = app
                    .issuer
                    .revoke_selector(&caller.client_id, selector, disable, Some(&source))
                    .await?;
                Ok(Json(summary).into_response())
            }
            (None, 0) => Err(Error::invalid_request("parameter token is missing")),
            _ => Err(Error::invalid_request(
                "send token or one selector (subject, client_id, session_id, kid)",
            )),
        }
    }
    .await
    .map_err(|e| ApiError::from(e).with_basic_challenge(basic))
}

/// RFC 7662 introspection, for clients allowed to introspect and admins.
#[utoipa::path(
    post, path = "/introspect", tag = "oauth",
    request_body(content = IntrospectRequest, content_type = "application/x-www-form-urlencoded"),
    security((), ("client_secret_basic" = [])),
    responses(
        (status = 200, description = "The claims of a live token, else only `{\"active\": false}`", body = Introspection, headers(("cache-control" = String, description = "no-store"))),
        (status = 400, description = "Malformed, missing or repeated parameter, or an OAuth error (RFC 6749 §5.2)", body = ErrorBody), (status = 401, description = "Client authentication failed (`invalid_client`); `WWW-Authenticate: Basic` when Basic was tried", body = ErrorBody, headers(("www-authenticate" = String))), (status = 403, description = "Authenticated, but not allowed (`access_denied`)", body = ErrorBody), (status = 413, description = "The body is larger than 64 KiB", body = ErrorBody), (status = 503, description = "The database is not answering, or too many logins at once (`temporarily_unavailable`)", body = ErrorBody, headers(("retry-after" = String))),
    )
)]
pub async fn introspect(
    State(app): State<AppState>,
    headers: HeaderMap,
    OAuthForm(params): OAuthForm,
) -> Result<Response, ApiError> {
    let credentials = client_credentials(&headers, &params)?;
    let basic = credentials.method == AuthMethod::Basic;
    let answer = async {
        let caller = app.issuer.authenticate_client(&credentials).await?;
        let token = params.require("token")?;
        app.issuer.introspect(&caller, token).await
    }
    .await
    .map_err(|e| ApiError::from(e).with_basic_challenge(basic))?;
    let mut response = Json(answer).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Events about this subject (a user id, or a client id for client_credentials).
    subject: Option<String>,
    /// Events about this client.
    client_id: Option<String>,
    /// One event type, such as `refresh_token_reuse_detected`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    event_type: Option<String>,
    /// At most this many events (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// One security event.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditView {
    #[serde(with = "time::serde::rfc3339")]
    time: time::OffsetDateTime,
    #[serde(rename = "type")]
    event_type: String,
    actor: Option<String>,
    subject: Option<String>,
    client_id: Option<String>,
    session_id: Option<String>,
    source_addr: Option<String>,
    #[schema(value_type = Object)]
    detail: serde_json::Value,
}

/// The audit log, newest first.
#[utoipa::path(
    get, path = "/admin/audit", tag = "admin",
    params(AuditQuery),
    security(("client_secret_basic" = [])),
    responses(
        (status = 200, description = "Security events, newest first", body = AuditEvents),
        (status = 400, description = "Malformed, missing or repeated parameter, or an OAuth error (RFC 6749 §5.2)", body = ErrorBody), (status = 401, description = "Client authentication failed (`invalid_client`); `WWW-Authenticate: Basic` when Basic was tried", body = ErrorBody, headers(("www-authenticate" = String))), (status = 403, description = "Authenticated, but not allowed (`access_denied`)", body = ErrorBody), (status = 503, description = "The database is not answering, or too many logins at once (`temporarily_unavailable`)", body = ErrorBody, headers(("retry-after" = String))),
    )
)]
pub async fn audit(
    State(app): State<AppState>,
    _admin: AdminClient,
    Query(query): Query<AuditQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Error::invalid_request("limit: from 1 to 1000").into());
    }
    let filters = [&query.subject, &query.client_id, &query.event_type];
    if filters
        .iter()
        .any(|f| f.as_ref().is_some_and(|f| f.contains('\0')))
    {
        return Err(Error::invalid_request("a filter contains a NUL character").into());
    }
    let events = app
        .issuer
        .audit(AuditFilter {
            subject: query.subject,
            client_id: query.client_id,
            event_type: query.event_type,
            limit,
        })
        .await?
        .into_iter()
        .map(|e| AuditView {
            time: e.created_at,
            event_type: e.event_type,
            actor: e.actor,
            subject: e.subject,
            client_id: e.client_id,
            session_id: e.session_id,
            source_addr: e.source_addr,
            detail: e.detail,
        })
        .collect::<Vec<_>>();
    Ok(Json(serde_json::json!({ "events": events })))
}
