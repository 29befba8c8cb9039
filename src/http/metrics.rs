//! GET /metrics: the Prometheus text exposition, with the database pool's gauges read at scrape time and the client hygiene gauges as last counted. Uses: domain, metrics.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::AppState;

/// GET /metrics: Prometheus text exposition.
#[utoipa::path(
    get, path = "/metrics", tag = "operations", operation_id = "metrics",
    responses((status = 200, description = "Prometheus text format (version 0.0.4)", body = String, content_type = "text/plain"))
)]
pub async fn get(State(app): State<AppState>) -> Response {
    let (open, idle) = app.issuer.pool_connections();
    metrics::gauge!(crate::metrics::DB_POOL_CONNECTIONS, "state" => "idle").set(idle as f64);
    metrics::gauge!(crate::metrics::DB_POOL_CONNECTIONS, "state" => "in_use")
        .set(f64::from(open).max(idle as f64) - idle as f64);
    let mut body = app.metrics.render();
    let counts = app.issuer.hygiene_counts();
    body.push_str(&crate::metrics::render_hygiene(
        counts.secrets_expiring_soon,
        counts.secrets_expired,
        counts.unused,
    ));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}
