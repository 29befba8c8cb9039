//! GET /admin/audit: the security events, newest first, filtered by subject, client or type. Uses: domain, model.

use axum::Json;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::AdminClient;
use super::error::{BAD_REQUEST, ErrorResponses, FORBIDDEN, UNAUTHORIZED, UNAVAILABLE};
use super::{ApiError, AppState};
use crate::domain::Error;
use crate::model::{AuditFilter, AuditRecord};

/// The filters are text without NUL characters (no stored value holds one: a NUL is bad input,
/// 400), and the document's pattern says so.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Events about this subject (a user id, or a client id for client_credentials).
    #[param(pattern = r"^[^\u0000]*$")]
    subject: Option<String>,
    /// Events about this client.
    #[param(pattern = r"^[^\u0000]*$")]
    client_id: Option<String>,
    /// One event type, such as `refresh_token_reuse_detected`.
    #[serde(rename = "type")]
    #[param(rename = "type", pattern = r"^[^\u0000]*$")]
    event_type: Option<String>,
    /// At most this many events (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// The answer of GET /admin/audit.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEvents {
    events: Vec<AuditView>,
}

/// One security event.
#[derive(Debug, Serialize, ToSchema)]
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

impl From<AuditRecord> for AuditView {
    fn from(e: AuditRecord) -> Self {
        Self {
            time: e.created_at,
            event_type: e.event_type,
            actor: e.actor,
            subject: e.subject,
            client_id: e.client_id,
            session_id: e.session_id,
            source_addr: e.source_addr,
            detail: e.detail,
        }
    }
}

/// The audit log, newest first.
#[utoipa::path(
    get, path = "/admin/audit", tag = "admin", operation_id = "audit",
    params(AuditQuery),
    security(("client_secret_basic" = [])),
    responses(
        (status = 200, description = "Security events, newest first", body = AuditEvents),
        ErrorResponses<{ BAD_REQUEST | UNAUTHORIZED | FORBIDDEN | UNAVAILABLE }>,
    )
)]
pub async fn get(
    State(app): State<AppState>,
    _admin: AdminClient,
    Query(query): Query<AuditQuery>,
) -> Result<Json<AuditEvents>, ApiError> {
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
        .await?;
    Ok(Json(AuditEvents {
        events: events.into_iter().map(AuditView::from).collect(),
    }))
}
