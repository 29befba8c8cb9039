//! The admin API (JSON, HTTP Basic with an admin client): clients, users, signing keys. Uses: domain.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::auth::AdminClient;
use super::form::JsonBody;
use super::openapi::{ErrorBody, KeyList, NewSecret, Rotated};
use super::{ApiError, AppState};
use crate::domain::admin::NewClient;
use crate::model::{Client, User};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateClient {
    /// RFC 3986 unreserved characters; generated when omitted.
    client_id: Option<String>,
    name: Option<String>,
    /// `client_credentials`, `password`, `refresh_token`: at least one.
    #[schema(min_items = 1)]
    grant_types: Vec<String>,
    #[serde(default)]
    scopes: Vec<String>,
    /// At least one; the first is the default audience of its tokens.
    #[serde(default)]
    audiences: Vec<String>,
    #[serde(default)]
    public: bool,
    #[serde(default)]
    admin: bool,
    #[serde(default)]
    introspect: bool,
}

/// A client as the API shows it: never its secret, only `client_secret` right after creation
/// or rotation.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ClientView {
    client_id: String,
    name: Option<String>,
    grant_types: Vec<&'static str>,
    scopes: Vec<String>,
    audiences: Vec<String>,
    public: bool,
    admin: bool,
    introspect: bool,
    disabled: bool,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
    /// `tss_…`, right after creation of a confidential client only.
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<String>,
}

impl ClientView {
    fn new(client: Client, secret: Option<String>) -> Self {
        Self {
            public: client.is_public(),
            grant_types: client.grant_types.iter().map(|g| g.as_str()).collect(),
            client_id: client.client_id,
            name: client.name,
            scopes: client.scopes,
            audiences: client.audiences,
            admin: client.is_admin,
            introspect: client.can_introspect,
            disabled: client.disabled,
            created_at: client.created_at,
            updated_at: client.updated_at,
            client_secret: secret,
        }
    }
}

/// No `Debug`: it carries a password.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    username: String,
    /// At least 8 characters, at most 1024 bytes.
    #[schema(format = Password, min_length = 8)]
    password: String,
}

/// No `Debug`: it may carry a password.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    /// Disabling revokes every session and access token of the user.
    disabled: Option<bool>,
    /// A new password (at least 8 characters); it also ends the user's sessions.
    #[schema(format = Password, min_length = 8)]
    password: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserView {
    /// The token `sub`.
    id: String,
    username: String,
    disabled: bool,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
}

impl From<User> for UserView {
    fn from(user: User) -> Self {
        Self {
            id: user.user_id.to_string(),
            username: user.username,
            disabled: user.disabled,
            created_at: user.created_at,
            updated_at: user.updated_at,
        }
    }
}

#[utoipa::path(
    post, path = "/admin/clients", tag = "admin",
    request_body = CreateClient,
    security(("client_secret_basic" = [])),
    responses(
        (status = 201, description = "The client, with `client_secret` (shown once) if it is confidential", body = ClientView, headers(("cache-control" = String, description = "no-store"), ("pragma" = String, description = "no-cache"))),
        (status = 400, description = "Malformed, missing or repeated parameter, or an OAuth error (RFC 6749 §5.2)", body = ErrorBody), (status = 401, description = "Client authentication failed (`invalid_client`); `WWW-Authenticate: Basic` when Basic was tried", body = ErrorBody, headers(("www-authenticate" = String))), (status = 403, description = "Authenticated, but not allowed (`access_denied`)", body = ErrorBody), (status = 409, description = "Conflicts with the current state (`conflict`)", body = ErrorBody), (status = 413, description = "The body is larger than 64 KiB", body = ErrorBody), (status = 503, description = "The database is not answering, or too many logins at once (`temporarily_unavailable`)", body = ErrorBody, headers(("retry-after" = String))),
    )
)]
pub async fn create_client(
    State(app): State<AppState>,
    AdminClient(admin): AdminClient,
    JsonBody(body): JsonBody<CreateClient>,
) -> Result<Response, ApiError> {
    let (client, secret) = app
        .issuer
        .create_client(
            &admin.client_id,
            NewClient {
                client_id: body.client_id,
                name: body.name,
                grant_types: body.grant_types,
                scopes: body.scopes,
                audiences: body.audiences,
                public: body.public,
                admin: body.admin,
                introspect: body.introspect,
            },
        )
        .await?;
    let view = ClientView::new(client, secret.map(|s| s.expose().to_owned()));
    Ok((StatusCode::CREATED, no_store(), Json(view)).into_response())
}

#[utoipa::path(
    get, path = "/admin/clients/{client_id}", tag = "admin",
    params(("client_id" = String, Path, description = "The client's id")),
    security(("client_secret_basic" = [])),
    responses(
        (status = 200, description = "The client, never its secret", body = ClientView),
        (status = 401, description = "Client authentication failed (`invalid_client`); `WWW-Authenticate: Basic` when Basic was tried", body = ErrorBody, headers(("www-authenticate" = String))), (status = 403, description = "Authenticated, but not allowed (`access_denied`)", body = ErrorBody), (status = 404, description = "No such client, user or key (`not_found`)", body = ErrorBody), (status = 503, description = "The database is not answering, or too many logins at once (`temporarily_unavailable`)", body = ErrorBody, headers(("retry-after" = String))),
    )
)]
pub async fn get_client(
    State(app): State<AppState>,
    _admin: AdminClient,
    Path(client_id): Path<String>,
) -> Result<Json<ClientView>, ApiError> {
    Ok(Json(ClientView::new(
        app.issuer.client(&client_id).await?,
        None,
    )))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateClient {
    disabled: bool,
}

#[utoipa::path(
    patch, path = "/admin/clients/{client_id}", tag = "admin",
    params(("client_id" = String, Path, description = "The client's id")),
    request_body = UpdateClient,
    security(("client_secret_basic" = [])),
    responses(
        (status = 200, description = "The client as it is now", body = ClientView),
        (status = 400, description = "Malformed, missing or repeated parameter, or an OAuth error (RFC 6749 §5.2)", body = ErrorBody), (status = 401, description = "Client authentication failed (`invalid_client`); `WWW-Authenticate: Basic` when Basic was tried", body = ErrorBody, headers(("www-authenticate" = String))), (status = 403, description = "Authenticated, but not allowed (`access_denied`)", body = ErrorBody), (status = 404, description = "No such client, user or key (`not_found`)", body = ErrorBody), (status = 409, description = "Conflicts with the current state (`conflict`)", body = ErrorBody), (status = 413, description = "The body is larger than 64 KiB", body = ErrorBody), (status = 503, description = "The database is not answering, or too many logins at once (`temporarily_unavailable`)", body = ErrorBody, headers(("retry-after" = String))),
    )
)]
pub async fn update_client(
    State(app): State<AppState>,
    AdminClient(admin): AdminClient,
    Path(client_id): Path<String>,
    JsonBody(body): JsonBody<UpdateClient>,
) -> Result<Json<ClientView>, ApiError> {
    let client = app
        .issuer
        .set_client_disabled(&admin.client_id, &client_id, body.disabled)
        .await?;
    Ok(Json(ClientView::new(client, None)))
}

#[utoipa::path(
    post, path = "/admin/clients/{client_id}/secret", tag = "admin",
    params(("client_id" = String, Path, description = "The client's id")),
    security(("client_secret_basic" = [])),
    responses(
        (status = 200, description = "A new secret, shown once; the old one stops working at once", body = NewSecret, headers(("cache-control" = String, description = "no-store"), ("pragma" = String, description = "no-cache"))),
        (status = 400, description = "Malformed, missing or repeated parameter, or an OAuth error (RFC 6749 §5.2)", body = ErrorBody), (status = 401, description = "Client authentication failed (`invalid_client`); `WWW-Authenticate: Basic` when Basic was tried", body = ErrorBody, headers(("www-authenticate" = String))), (status = 403, description = "Authenticated, but not allowed (`access_denied`)", body = ErrorBody), (status = 404, description = "No such client, user or key (`not_found`)", body = ErrorBody), (status = 503, description = "The database is not answering, or too many logins at once (`temporarily_unavailable`)", body = ErrorBody, headers(("retry-after" = String))),
    )
)]
pub async fn rotate_client_secret(
    State(app): State<AppState>,
    AdminClient(admin): AdminClient,
    Path(client_id): Path<String>,
) -> Result<Response, ApiError> {
    let secret = app
        .issuer
        .rotate_client_secret(&admin.client_id, &client_id)
        .await?;
    let body = serde_json::json!({ "client_id": client_id, "client_secret": secret.expose() });
    Ok((no_store(), Json(body)).into_response())
}

#[utoipa::path(
    post, path = "/admin/users", tag = "admin",
    request_body = CreateUser,
    security(("client_secret_basic" = [])),
    responses(
        (status = 201, description = "The user; `id` is the token `sub`", body = UserView),
        (status = 400, description = "Malformed, missing or repeated parameter, or an OAuth error (RFC 6749 §5.2)", body = ErrorBody), (status = 401, description = "Client authentication failed (`invalid_client`); `WWW-Authenticate: Basic` when Basic was tried", body = ErrorBody, headers(("www-authenticate" = String))), (status = 403, description = "Authenticated, but not allowed (`access_denied`)", body = ErrorBody), (status = 409, description = "Conflicts with the current state (`conflict`)", body = ErrorBody), (status = 413, description = "The body is larger than 64 KiB", body = ErrorBody), (status = 503, description = "The database is not answering, or too many logins at once (`temporarily_unavailable`)", body = ErrorBody, headers(("retry-after" = String))),
    )
)]
pub async fn create_user(
    State(app): State<AppState>,
    AdminClient(admin): AdminClient,
    JsonBody(body): JsonBody<CreateUser>,
) -> Result<Response, ApiError> {
    let user = app
        .issuer
        .create_user(&admin.client_id, &body.username, &body.password)
        .await?;
    Ok((StatusCode::CREATED, Json(UserView::from(user))).into_response())
}

#[utoipa::path(
    patch, path = "/admin/users/{user_id}", tag = "admin",
    params(("user_id" = String, Path, description = "The user's id (the token `sub`)")),
    request_body = UpdateUser,
    security(("client_secret_basic" = [])),
    responses(
        (status = 200, description = "The user as it is now", body = UserView),
        (status = 400, description = "Malformed, missing or repeated parameter, or an OAuth error (RFC 6749 §5.2)", body = ErrorBody), (status = 401, description = "Client authentication failed (`invalid_client`); `WWW-Authenticate: Basic` when Basic was tried", body = ErrorBody, headers(("www-authenticate" = String))), (status = 403, description = "Authenticated, but not allowed (`access_denied`)", body = ErrorBody), (status = 404, description = "No such client, user or key (`not_found`)", body = ErrorBody), (status = 413, description = "The body is larger than 64 KiB", body = ErrorBody), (status = 503, description = "The database is not answering, or too many logins at once (`temporarily_unavailable`)", body = ErrorBody, headers(("retry-after" = String))),
    )
)]
pub async fn update_user(
    State(app): State<AppState>,
    AdminClient(admin): AdminClient,
    Path(user_id): Path<String>,
    JsonBody(body): JsonBody<UpdateUser>,
) -> Result<Json<UserView>, ApiError> {
    let user = app
        .issuer
        .update_user(
            &admin.client_id,
            &user_id,
            body.disabled,
            body.password.as_deref(),
        )
        .await?;
    Ok(Json(user.into()))
}

#[utoipa::path(
    get, path = "/admin/keys", tag = "admin",
    security(("client_secret_basic" = [])),
    responses(
        (status = 200, description = "Every signing key with its state and times", body = KeyList),
        (status = 401, description = "Client authentication failed (`invalid_client`); `WWW-Authenticate: Basic` when Basic was tried", body = ErrorBody, headers(("www-authenticate" = String))), (status = 403, description = "Authenticated, but not allowed (`access_denied`)", body = ErrorBody), (status = 503, description = "The database is not answering, or too many logins at once (`temporarily_unavailable`)", body = ErrorBody, headers(("retry-after" = String))),
    )
)]
pub async fn list_keys(
    State(app): State<AppState>,
    _admin: AdminClient,
) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "keys": app.issuer.keys().snapshot().keys }))
}

#[utoipa::path(
    post, path = "/admin/keys/rotate", tag = "admin",
    security(("client_secret_basic" = [])),
    responses(
        (status = 200, description = "The next key signs now; the old one is retired", body = Rotated),
        (status = 401, description = "Client authentication failed (`invalid_client`); `WWW-Authenticate: Basic` when Basic was tried", body = ErrorBody, headers(("www-authenticate" = String))), (status = 403, description = "Authenticated, but not allowed (`access_denied`)", body = ErrorBody), (status = 409, description = "The next key has been published for less than the JWKS max-age (`conflict`)", body = ErrorBody), (status = 503, description = "The database is not answering, or too many logins at once (`temporarily_unavailable`)", body = ErrorBody, headers(("retry-after" = String))),
    )
)]
pub async fn rotate_keys(
    State(app): State<AppState>,
    AdminClient(admin): AdminClient,
) -> Result<Json<serde_json::Value>, ApiError> {
    let kid = app.issuer.rotate_keys(&admin.client_id, false).await?;
    Ok(Json(serde_json::json!({ "kid": kid })))
}

/// Responses carrying a secret are never cached.
fn no_store() -> [(axum::http::HeaderName, &'static str); 2] {
    [
        (axum::http::header::CACHE_CONTROL, "no-store"),
        (axum::http::header::PRAGMA, "no-cache"),
    ]
}
