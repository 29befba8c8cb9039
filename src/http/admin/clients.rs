//! The admin API's clients: POST /admin/clients, GET and PATCH /admin/clients/{client_id}, and POST /admin/clients/{client_id}/secret. Uses: domain, model.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use utoipa::ToSchema;

use super::no_store;
use crate::domain::admin::NewClient;
use crate::http::auth::AdminClient;
use crate::http::error::{
    BAD_REQUEST, CONFLICT, ErrorResponses, FORBIDDEN, NOT_FOUND, TOO_LARGE, UNAUTHORIZED,
    UNAVAILABLE,
};
use crate::http::form::JsonBody;
use crate::http::source::SourceAddr;
use crate::http::{ApiError, AppState};
use crate::model::Client;

#[derive(Debug, Deserialize, ToSchema)]
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
#[derive(Debug, Serialize, ToSchema)]
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

/// POST /admin/clients/{client_id}/secret: the new secret, shown once.
#[derive(Serialize, ToSchema)]
pub struct NewSecret {
    client_id: String,
    #[schema(format = Password)]
    client_secret: String,
}

#[utoipa::path(
    post, path = "/admin/clients", tag = "admin", operation_id = "create_client",
    request_body = CreateClient,
    security(("client_secret_basic" = [])),
    responses(
        (status = 201, description = "The client, with `client_secret` (shown once) if it is confidential", body = ClientView, headers(("cache-control" = String, description = "no-store"), ("pragma" = String, description = "no-cache"))),
        ErrorResponses<{ BAD_REQUEST | UNAUTHORIZED | FORBIDDEN | CONFLICT | TOO_LARGE | UNAVAILABLE }>,
    )
)]
pub async fn create(
    State(app): State<AppState>,
    source: SourceAddr,
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
            source.0,
        )
        .await?;
    let view = ClientView::new(client, secret.map(|s| s.expose().to_owned()));
    Ok((StatusCode::CREATED, no_store(), Json(view)).into_response())
}

#[utoipa::path(
    get, path = "/admin/clients/{client_id}", tag = "admin", operation_id = "get_client",
    params(("client_id" = String, Path, description = "The client's id")),
    security(("client_secret_basic" = [])),
    responses(
        (status = 200, description = "The client, never its secret", body = ClientView),
        ErrorResponses<{ UNAUTHORIZED | FORBIDDEN | NOT_FOUND | UNAVAILABLE }>,
    )
)]
pub async fn get(
    State(app): State<AppState>,
    _admin: AdminClient,
    Path(client_id): Path<String>,
) -> Result<Json<ClientView>, ApiError> {
    Ok(Json(ClientView::new(
        app.issuer.client(&client_id).await?,
        None,
    )))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateClient {
    disabled: bool,
}

#[utoipa::path(
    patch, path = "/admin/clients/{client_id}", tag = "admin", operation_id = "update_client",
    params(("client_id" = String, Path, description = "The client's id")),
    request_body = UpdateClient,
    security(("client_secret_basic" = [])),
    responses(
        (status = 200, description = "The client as it is now", body = ClientView),
        ErrorResponses<{ BAD_REQUEST | UNAUTHORIZED | FORBIDDEN | NOT_FOUND | CONFLICT | TOO_LARGE | UNAVAILABLE }>,
    )
)]
pub async fn update(
    State(app): State<AppState>,
    source: SourceAddr,
    AdminClient(admin): AdminClient,
    Path(client_id): Path<String>,
    JsonBody(body): JsonBody<UpdateClient>,
) -> Result<Json<ClientView>, ApiError> {
    let client = app
        .issuer
        .set_client_disabled(&admin.client_id, &client_id, body.disabled, source.0)
        .await?;
    Ok(Json(ClientView::new(client, None)))
}

#[utoipa::path(
    post, path = "/admin/clients/{client_id}/secret", tag = "admin", operation_id = "rotate_client_secret",
    params(("client_id" = String, Path, description = "The client's id")),
    security(("client_secret_basic" = [])),
    responses(
        (status = 200, description = "A new secret, shown once; the old one stops working at once", body = NewSecret, headers(("cache-control" = String, description = "no-store"), ("pragma" = String, description = "no-cache"))),
        ErrorResponses<{ BAD_REQUEST | UNAUTHORIZED | FORBIDDEN | NOT_FOUND | UNAVAILABLE }>,
    )
)]
pub async fn rotate_secret(
    State(app): State<AppState>,
    source: SourceAddr,
    AdminClient(admin): AdminClient,
    Path(client_id): Path<String>,
) -> Result<Response, ApiError> {
    let secret = app
        .issuer
        .rotate_client_secret(&admin.client_id, &client_id, source.0)
        .await?;
    let body = NewSecret {
        client_id,
        client_secret: secret.expose().to_owned(),
    };
    Ok((no_store(), Json(body)).into_response())
}
