//! Authorization server metadata (RFC 8414), rendered once at start-up. It lists only what this build serves. Uses: nothing.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;

use super::AppState;

pub struct Document {
    json: Bytes,
}

#[derive(Serialize)]
struct Metadata<'a> {
    issuer: &'a str,
    jwks_uri: String,
    /// REQUIRED by RFC 8414 §2; Tessera has no authorization endpoint, so none.
    response_types_supported: [&'a str; 0],
    /// Omitting it would mean "authorization_code and implicit" (RFC 8414 §2).
    grant_types_supported: [&'a str; 0],
}

impl Document {
    pub fn new(issuer: &str) -> Self {
        let metadata = Metadata {
            issuer,
            jwks_uri: format!("{issuer}/.well-known/jwks.json"),
            response_types_supported: [],
            grant_types_supported: [],
        };
        let json = serde_json::to_vec(&metadata).expect("metadata serialises");
        Self { json: json.into() }
    }
}

pub async fn get(State(app): State<AppState>) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        app.metadata.json.clone(),
    )
}
