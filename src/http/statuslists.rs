//! GET /statuslists/{id} (draft-ietf-oauth-status-list §8): the stored, signed Token Status List every instance serves, with ETag, 304 and gzip; GET /statuslists, the aggregation (§9.3). Uses: domain.

use std::io::Write;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, BAD_REQUEST, ErrorResponses, NOT_FOUND, UNAVAILABLE};
use super::jwks::if_none_match;
use crate::domain::{self, status_lists::STATUS_LIST_JWT};

/// §9.3: the URIs of every list a live token may name.
#[derive(Serialize, ToSchema)]
pub struct StatusListAggregation {
    pub status_lists: Vec<String>,
}

#[utoipa::path(
    get, path = "/statuslists/{id}", tag = "discovery", operation_id = "status_list",
    params(("id" = i64, Path, minimum = 1, description = "The list's id, from a token's `status.status_list.uri`")),
    responses(
        (status = 200, description = "A Status List Token (`typ: statuslist+jwt`, signed by a key of the JWKS): claims `sub`, `iat`, `exp`, `ttl`, `status_list: {bits: 1, lst}`",
            content_type = "application/statuslist+jwt", body = String,
            headers(("cache-control" = String, description = "public, max-age=TESSERA_STATUS_LIST_TTL"), ("etag" = String),
                ("access-control-allow-origin" = String, description = "`*`: public, for browser-based relying parties"),
                ("content-encoding" = String, description = "gzip when asked for"))),
        (status = 304, description = "The list still has the ETag sent in If-None-Match", headers(("etag" = String))),
        ErrorResponses<{ BAD_REQUEST | NOT_FOUND | UNAVAILABLE }>,
    )
)]
pub async fn get(
    State(app): State<AppState>,
    Path(id): Path<String>,
    request: HeaderMap,
) -> Result<Response, ApiError> {
    // Canonical decimal only: one URI per list.
    let id = id
        .parse::<i64>()
        .ok()
        .filter(|n| *n > 0 && n.to_string() == id)
        .ok_or_else(|| {
            domain::Error::invalid_request("id must be a list id (a positive integer)")
        })?;
    let list = app.issuer.status_list(id).await?;
    let gzip = accepts_gzip(&request);
    // One ETag per representation (RFC 9110 §8.8.3).
    let etag = if gzip {
        format!("\"{}-gzip\"", list.etag)
    } else {
        format!("\"{}\"", list.etag)
    };
    let headers = [
        (
            header::CACHE_CONTROL,
            HeaderValue::from_str(&format!("public, max-age={}", list.max_age.as_secs()))
                .expect("a number"),
        ),
        (
            header::ETAG,
            HeaderValue::from_str(&etag).expect("hex in quotes"),
        ),
        (header::VARY, HeaderValue::from_static("accept-encoding")),
        // §8.1: browser-based relying parties may fetch it; it is public and carries no cookie.
        (
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        ),
    ];
    if if_none_match(&request, &etag) {
        return Ok((StatusCode::NOT_MODIFIED, headers).into_response());
    }
    let content_type = [(
        header::CONTENT_TYPE,
        HeaderValue::from_static(STATUS_LIST_JWT),
    )];
    if gzip {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder
            .write_all(list.token.as_bytes())
            .expect("writing to a Vec cannot fail");
        let body = encoder.finish().expect("writing to a Vec cannot fail");
        let encoding = [(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"))];
        return Ok((headers, content_type, encoding, body).into_response());
    }
    Ok((headers, content_type, list.token).into_response())
}

#[utoipa::path(
    get, path = "/statuslists", tag = "discovery", operation_id = "status_list_aggregation",
    responses(
        (status = 200, description = "Every list a live token may name (the metadata's `status_list_aggregation_endpoint`)", body = StatusListAggregation),
        ErrorResponses<{ NOT_FOUND | UNAVAILABLE }>,
    )
)]
pub async fn aggregation(
    State(app): State<AppState>,
) -> Result<Json<StatusListAggregation>, ApiError> {
    Ok(Json(StatusListAggregation {
        status_lists: app.issuer.status_list_uris().await?,
    }))
}

/// RFC 9110 §12.5.3: `gzip` (or `x-gzip`, or `*`) listed without `q=0`.
fn accepts_gzip(request: &HeaderMap) -> bool {
    request
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or_default().trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            !refused
                && (coding.eq_ignore_ascii_case("gzip")
                    || coding.eq_ignore_ascii_case("x-gzip")
                    || coding == "*")
        })
}
