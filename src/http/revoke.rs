//! POST /revoke (RFC 7009, plus admin selectors), POST /introspect (RFC 7662) and GET /admin/audit. Uses: domain.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::auth::{AdminClient, client_credentials, revocation_credentials};
use super::form::OAuthForm;
use super::{ApiError, AppState};
use crate::domain::revoke::Selector;
use crate::domain::{AuthMethod, Error};
use crate::model::AuditFilter;

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
                // RFC 7009 §2.2: 200 whether or not there was anything to revoke.
                Ok(StatusCode::OK.into_response())
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

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    subject: Option<String>,
    client_id: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    limit: Option<u32>,
}

#[derive(Debug, Serialize)]
struct AuditView {
    #[serde(with = "time::serde::rfc3339")]
    time: time::OffsetDateTime,
    #[serde(rename = "type")]
    event_type: String,
    actor: Option<String>,
    subject: Option<String>,
    client_id: Option<String>,
    session_id: Option<String>,
    source_addr: Option<String>,
    detail: serde_json::Value,
}

pub async fn audit(
    State(app): State<AppState>,
    _admin: AdminClient,
    Query(query): Query<AuditQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Error::invalid_request("limit: from 1 to 1000").into());
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
