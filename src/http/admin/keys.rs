//! GET /admin/keys and POST /admin/keys/rotate: the signing keys with their states, and a rotation now. Uses: domain.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::keys::KeyInfo;
use crate::http::auth::AdminClient;
use crate::http::error::{ErrorBody, ErrorResponses, FORBIDDEN, UNAUTHORIZED, UNAVAILABLE};
use crate::http::source::SourceAddr;
use crate::http::{ApiError, AppState};

/// The answer of GET /admin/keys.
#[derive(Serialize, ToSchema)]
pub struct KeyList {
    keys: Vec<KeyInfo>,
}

/// POST /admin/keys/rotate: the key that signs now.
#[derive(Serialize, ToSchema)]
pub struct Rotated {
    kid: String,
}

#[utoipa::path(
    get, path = "/admin/keys", tag = "admin", operation_id = "list_keys",
    security(("client_secret_basic" = [])),
    responses(
        (status = 200, description = "Every signing key with its state and times", body = KeyList),
        ErrorResponses<{ UNAUTHORIZED | FORBIDDEN | UNAVAILABLE }>,
    )
)]
pub async fn list(State(app): State<AppState>, _admin: AdminClient) -> Json<KeyList> {
    let keys = app.issuer.keys().snapshot().keys.clone();
    Json(KeyList { keys })
}

#[utoipa::path(
    post, path = "/admin/keys/rotate", tag = "admin", operation_id = "rotate_keys",
    security(("client_secret_basic" = [])),
    responses(
        (status = 200, description = "The next key signs now; the old one is retired", body = Rotated),
        (status = 409, description = "The next key has been published for less than the JWKS max-age (`conflict`)", body = ErrorBody),
        ErrorResponses<{ UNAUTHORIZED | FORBIDDEN | UNAVAILABLE }>,
    )
)]
pub async fn rotate(
    State(app): State<AppState>,
    source: SourceAddr,
    AdminClient(admin): AdminClient,
) -> Result<Json<Rotated>, ApiError> {
    let kid = app
        .issuer
        .rotate_keys(&admin.client_id, false, source.0)
        .await?;
    Ok(Json(Rotated { kid }))
}
