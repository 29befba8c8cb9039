//! POST /admin/users, GET and PATCH /admin/users/{user_id}: create a user, read it with its roles, change its roles, disable it or change its password. Uses: domain, model.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::domain::admin::UserChange;
use crate::http::auth::AdminClient;
use crate::http::error::{
    BAD_REQUEST, CONFLICT, ErrorResponses, FORBIDDEN, NOT_FOUND, TOO_LARGE, UNAUTHORIZED,
    UNAVAILABLE,
};
use crate::http::form::JsonBody;
use crate::http::source::SourceAddr;
use crate::http::{ApiError, AppState};
use crate::model::User;

/// No `Debug`: it carries a password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    username: String,
    /// At least 8 characters, at most 1024 bytes.
    #[schema(format = Password, min_length = 8)]
    password: String,
    /// Role names; the user holds their scopes and nothing else (none: no scope at all).
    #[serde(default)]
    roles: Vec<String>,
}

/// No `Debug`: it may carry a password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    /// Disabling revokes every session and access token of the user.
    disabled: Option<bool>,
    /// A new password (at least 8 characters); it also ends the user's sessions.
    #[schema(format = Password, min_length = 8)]
    password: Option<String>,
    /// Replaces the user's roles. Scopes the user no longer holds are cut off from its tokens
    /// at once; its sessions stay and narrow at their next refresh.
    roles: Option<Vec<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    /// The token `sub`.
    id: String,
    username: String,
    /// The roles the user holds, by name.
    roles: Vec<String>,
    disabled: bool,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
}

impl UserView {
    fn new(user: User, roles: Vec<String>) -> Self {
        Self {
            id: user.user_id.to_string(),
            username: user.username,
            roles,
            disabled: user.disabled,
            created_at: user.created_at,
            updated_at: user.updated_at,
        }
    }
}

#[utoipa::path(
    post, path = "/admin/users", tag = "admin", operation_id = "create_user",
    request_body = CreateUser,
    security(("client_secret_basic" = [])),
    responses(
        (status = 201, description = "The user; `id` is the token `sub`", body = UserView),
        ErrorResponses<{ BAD_REQUEST | UNAUTHORIZED | FORBIDDEN | CONFLICT | TOO_LARGE | UNAVAILABLE }>,
    )
)]
pub async fn create(
    State(app): State<AppState>,
    source: SourceAddr,
    AdminClient(admin): AdminClient,
    JsonBody(body): JsonBody<CreateUser>,
) -> Result<Response, ApiError> {
    let user = app
        .issuer
        .create_user(
            &admin.client_id,
            &body.username,
            &body.password,
            &body.roles,
            source.0,
        )
        .await?;
    let roles = app.issuer.user_roles(user.user_id).await?;
    Ok((StatusCode::CREATED, Json(UserView::new(user, roles))).into_response())
}

#[utoipa::path(
    get, path = "/admin/users/{user_id}", tag = "admin", operation_id = "get_user",
    params(("user_id" = String, Path, description = "The user's id (the token `sub`)")),
    security(("client_secret_basic" = [])),
    responses(
        (status = 200, description = "The user and its roles", body = UserView),
        ErrorResponses<{ UNAUTHORIZED | FORBIDDEN | NOT_FOUND | UNAVAILABLE }>,
    )
)]
pub async fn get(
    State(app): State<AppState>,
    AdminClient(_admin): AdminClient,
    Path(user_id): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    let user = app.issuer.user(&user_id).await?;
    let roles = app.issuer.user_roles(user.user_id).await?;
    Ok(Json(UserView::new(user, roles)))
}

#[utoipa::path(
    patch, path = "/admin/users/{user_id}", tag = "admin", operation_id = "update_user",
    params(("user_id" = String, Path, description = "The user's id (the token `sub`)")),
    request_body = UpdateUser,
    security(("client_secret_basic" = [])),
    responses(
        (status = 200, description = "The user as it is now", body = UserView),
        ErrorResponses<{ BAD_REQUEST | UNAUTHORIZED | FORBIDDEN | NOT_FOUND | TOO_LARGE | UNAVAILABLE }>,
    )
)]
pub async fn update(
    State(app): State<AppState>,
    source: SourceAddr,
    AdminClient(admin): AdminClient,
    Path(user_id): Path<String>,
    JsonBody(body): JsonBody<UpdateUser>,
) -> Result<Json<UserView>, ApiError> {
    let change = UserChange {
        disabled: body.disabled,
        password: body.password.as_deref(),
        roles: body.roles.as_deref(),
    };
    let user = app
        .issuer
        .update_user(&admin.client_id, &user_id, change, source.0)
        .await?;
    let roles = app.issuer.user_roles(user.user_id).await?;
    Ok(Json(UserView::new(user, roles)))
}
