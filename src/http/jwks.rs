//! GET /.well-known/jwks.json (RFC 7517 §5): the published public keys, precomputed whenever the key set changes, with a strong ETag. Uses: domain.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::openapi::Jwks;

#[utoipa::path(
    get, path = "/.well-known/jwks.json", tag = "discovery", operation_id = "jwks",
    responses(
        (status = 200, description = "The next, active and retired-in-window public keys", body = Jwks,
            headers(("cache-control" = String, description = "public, max-age=TESSERA_JWKS_MAX_AGE"), ("etag" = String))),
        (status = 304, description = "The key set still has the ETag sent in If-None-Match", headers(("etag" = String))),
    )
)]
pub async fn get(State(app): State<AppState>, request: HeaderMap) -> Response {
    let snapshot = app.issuer.keys().snapshot();
    let etag = HeaderValue::from_str(&snapshot.etag).expect("the ETag is base64url in quotes");
    let headers = [
        (header::CACHE_CONTROL, app.jwks_cache_control.clone()),
        (header::ETAG, etag),
    ];
    if if_none_match(&request, &snapshot.etag) {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    (
        headers,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        snapshot.jwks.clone(),
    )
        .into_response()
}

/// RFC 9110 §13.1.2: a list of entity tags or `*`; weak comparison is allowed for GET.
fn if_none_match(request: &HeaderMap, etag: &str) -> bool {
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == "*" || tag == etag)
}
