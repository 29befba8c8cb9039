//! PUT, GET and DELETE /admin/roles/{name} and GET /admin/roles: named scope sets that decide what a user's tokens may carry. Uses: domain, model.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::http::auth::AdminClient;
use crate::http::error::{
    BAD_REQUEST, ErrorResponses, FORBIDDEN, NOT_FOUND, TOO_LARGE, UNAUTHORIZED, UNAVAILABLE,
};
use crate::http::form::JsonBody;
use crate::http::source::SourceAddr;
use crate::http::{ApiError, AppState};
use crate::model::Role;

/// An RFC 6749 scope-token: printable ASCII without space, `"` or `\`.
#[derive(ToSchema)]
#[schema(pattern = r"^[!#-\[\]-~]+$")]
#[expect(
    dead_code,
    reason = "a schema only: what the items of `scopes` look like"
)]
pub struct ScopeToken(String);

/// The body of PUT /admin/roles/{name}.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutRole {
    /// RFC 6749 scope-tokens, at most 256. Scopes a role no longer grants are cut off at once
    /// from every token that relied on it.
    #[schema(value_type = Vec<ScopeToken>, max_items = 256)]
    scopes: Vec<String>,
    /// Free text, at most 1024 characters, no control characters.
    #[schema(pattern = r"^[^\u0000-\u001f\u007f-\u009f]{0,1024}$")]
    description: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoleView {
    /// `[A-Za-z0-9_.:-]{1,64}`
    name: String,
    scopes: Vec<String>,
    description: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
}

impl From<Role> for RoleView {
    fn from(role: Role) -> Self {
        Self {
            name: role.name,
            scopes: role.scopes,
            description: role.description,
            created_at: role.created_at,
            updated_at: role.updated_at,
        }
    }
}

/// The answer of GET /admin/roles.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoleList {
    roles: Vec<RoleView>,
}

#[utoipa::path(
    put, path = "/admin/roles/{name}", tag = "admin", operation_id = "put_role",
    params(("name" = String, Path, pattern = r"^[A-Za-z0-9_.:-]{1,64}$", description = "The role's name, `[A-Za-z0-9_.:-]{1,64}`")),
    request_body = PutRole,
    security(("client_secret_basic" = [])),
    responses(
        (status = 201, description = "The role, created", body = RoleView),
        (status = 200, description = "The role, replaced", body = RoleView),
        ErrorResponses<{ BAD_REQUEST | UNAUTHORIZED | FORBIDDEN | TOO_LARGE | UNAVAILABLE }>,
    )
)]
pub async fn put(
    State(app): State<AppState>,
    source: SourceAddr,
    AdminClient(admin): AdminClient,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<PutRole>,
) -> Result<Response, ApiError> {
    let (role, created) = app
        .issuer
        .put_role(
            &admin.client_id,
            &name,
            &body.scopes,
            body.description.as_deref(),
            source.0,
        )
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(RoleView::from(role))).into_response())
}

#[utoipa::path(
    get, path = "/admin/roles/{name}", tag = "admin", operation_id = "get_role",
    params(("name" = String, Path, pattern = r"^[A-Za-z0-9_.:-]{1,64}$", description = "The role's name")),
    security(("client_secret_basic" = [])),
    responses(
        (status = 200, description = "The role", body = RoleView),
        ErrorResponses<{ UNAUTHORIZED | FORBIDDEN | NOT_FOUND | UNAVAILABLE }>,
    )
)]
pub async fn get(
    State(app): State<AppState>,
    AdminClient(_admin): AdminClient,
    Path(name): Path<String>,
) -> Result<Json<RoleView>, ApiError> {
    Ok(Json(app.issuer.role(&name).await?.into()))
}

#[utoipa::path(
    get, path = "/admin/roles", tag = "admin", operation_id = "list_roles",
    security(("client_secret_basic" = [])),
    responses(
        (status = 200, description = "Every role, by name", body = RoleList),
        ErrorResponses<{ UNAUTHORIZED | FORBIDDEN | UNAVAILABLE }>,
    )
)]
pub async fn list(
    State(app): State<AppState>,
    AdminClient(_admin): AdminClient,
) -> Result<Json<RoleList>, ApiError> {
    let roles = app.issuer.roles().await?;
    Ok(Json(RoleList {
        roles: roles.into_iter().map(RoleView::from).collect(),
    }))
}

#[utoipa::path(
    delete, path = "/admin/roles/{name}", tag = "admin", operation_id = "delete_role",
    params(("name" = String, Path, pattern = r"^[A-Za-z0-9_.:-]{1,64}$", description = "The role's name")),
    security(("client_secret_basic" = [])),
    responses(
        (status = 204, description = "Deleted: its holders lose it, and every token that relied on it loses its scopes"),
        ErrorResponses<{ UNAUTHORIZED | FORBIDDEN | NOT_FOUND | UNAVAILABLE }>,
    )
)]
pub async fn delete(
    State(app): State<AppState>,
    source: SourceAddr,
    AdminClient(admin): AdminClient,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    app.issuer
        .delete_role(&admin.client_id, &name, source.0)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
