//! GET /admin/keys and POST /admin/keys/rotate: the signing keys with their states, and a rotation now. Uses: domain.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::keys::KeyInfo;
use crate::http::auth::AdminClient;
use crate::http::error::{
    BAD_REQUEST, ErrorBody, ErrorResponses, FORBIDDEN, TOO_LARGE, UNAUTHORIZED, UNAVAILABLE,
};
use crate::http::form::OptionalJsonBody;
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

/// The optional body of POST /admin/keys/rotate.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKeys {
    /// Rotate even while the next key has been published for less than the JWKS max-age:
    /// verifiers with a cached JWKS may then meet an unknown `kid` until they refetch.
    #[serde(default)]
    force: bool,
}

#[utoipa::path(
    post, path = "/admin/keys/rotate", tag = "admin", operation_id = "rotate_keys",
    request_body(content = Option<RotateKeys>, description = "Optional; an empty body is `{\"force\": false}`"),
    security(("client_secret_basic" = [])),
    responses(
        (status = 200, description = "The next key signs now; the old one is retired", body = Rotated),
        (status = 409, description = "The next key has been published for less than the JWKS max-age (`conflict`); `Retry-After` says when it will have been, or send `{\"force\": true}`", body = ErrorBody, headers(("retry-after" = String, description = "Seconds until the next key has been published for the JWKS max-age"))),
        ErrorResponses<{ BAD_REQUEST | UNAUTHORIZED | FORBIDDEN | TOO_LARGE | UNAVAILABLE }>,
    )
)]
pub async fn rotate(
    State(app): State<AppState>,
    source: SourceAddr,
    AdminClient(admin): AdminClient,
    OptionalJsonBody(body): OptionalJsonBody<RotateKeys>,
) -> Result<Json<Rotated>, ApiError> {
    let kid = app
        .issuer
        .rotate_keys(&admin.client_id, body.force, source.0)
        .await?;
    Ok(Json(Rotated { kid }))
}
