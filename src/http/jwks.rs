//! GET /.well-known/jwks.json (RFC 7517 §5): the published public keys, precomputed whenever the key set changes, with a strong ETag. Uses: domain.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;

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
