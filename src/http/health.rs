//! Liveness and readiness probes for orchestrators and load balancers. Uses: domain.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::openapi::{ErrorBody, Status};
use super::{ApiError, AppState};

/// 200 while the process runs; touches nothing else.
#[utoipa::path(
    get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process runs", body = Status))
)]
pub async fn healthz() -> Response {
    no_store(Json(json!({ "status": "ok" })).into_response())
}

/// 200 when the database answers; 503 `temporarily_unavailable` while it does not, and 200 again
/// once it does, without a restart.
#[utoipa::path(
    get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "The database answers and a signing key is loaded", body = Status),
        (status = 503, description = "The database is not answering, or too many logins at once (`temporarily_unavailable`)", body = ErrorBody, headers(("retry-after" = String))),
    )
)]
pub async fn readyz(State(app): State<AppState>) -> Result<Response, ApiError> {
    app.issuer.readiness().await?;
    Ok(no_store(Json(json!({ "status": "ready" })).into_response()))
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
