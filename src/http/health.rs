//! GET /healthz and GET /readyz, the liveness and readiness probes for orchestrators and load balancers (kept together: two small answers of one kind). Uses: domain.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ErrorResponses, UNAVAILABLE};
use super::{ApiError, AppState};

/// `{"status": "ok"}` or `{"status": "ready"}`.
#[derive(Serialize, ToSchema)]
pub struct Status {
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// 200 while the process runs; touches nothing else.
#[utoipa::path(
    get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process runs", body = Status))
)]
pub async fn healthz() -> Response {
    no_store(Status { status: "ok" })
}

/// 200 when the database answers; 503 `temporarily_unavailable` while it does not, and 200 again
/// once it does, without a restart.
#[utoipa::path(
    get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "The database answers and a signing key is loaded", body = Status),
        ErrorResponses<UNAVAILABLE>,
    )
)]
pub async fn readyz(State(app): State<AppState>) -> Result<Response, ApiError> {
    app.issuer.readiness().await?;
    Ok(no_store(Status { status: "ready" }))
}

fn no_store(status: Status) -> Response {
    (
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Json(status),
    )
        .into_response()
}
