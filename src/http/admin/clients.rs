//! The admin API's clients: POST and GET /admin/clients, GET and PATCH /admin/clients/{client_id}, and POST /admin/clients/{client_id}/secret. Uses: domain, model.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use utoipa::{IntoParams, ToSchema};

use super::no_store;
use crate::domain::Error;
use crate::domain::admin::{ClientChange, NewClient, NewSecret as SecretRequest};
use crate::domain::usage::ClientDetails;
use crate::http::auth::AdminClient;
use crate::http::error::{
    BAD_REQUEST, CONFLICT, ErrorResponses, FORBIDDEN, NOT_FOUND, TOO_LARGE, UNAUTHORIZED,
    UNAVAILABLE,
};
use crate::http::form::{JsonBody, OptionalJsonBody};
use crate::http::source::SourceAddr;
use crate::http::{ApiError, AppState};
use crate::model::{Client, ClientUsage};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateClient {
    /// RFC 3986 unreserved characters; generated when omitted.
    client_id: Option<String>,
    name: Option<String>,
    /// `authorization_code`, `client_credentials`, `password`, `refresh_token`: at least one.
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
    /// Seconds a generated secret of this client lives (60 to 4294967295); without it,
    /// `TESSERA_CLIENT_SECRET_MAX_AGE`. Confidential clients only.
    #[schema(value_type = Option<i64>, minimum = 60, maximum = 4294967295_i64)]
    secret_max_age: Option<Value>,
    /// Where /authorize may send the browser back, compared as exact strings: absolute
    /// `https` URIs, `http://127.0.0.1` or `http://[::1]` (any port then matches, RFC 8252
    /// §7.3), or a private-use scheme with a dot; no fragment, no wildcard. At least one with
    /// the `authorization_code` grant.
    #[serde(default)]
    #[schema(max_items = 20)]
    redirect_uris: Vec<String>,
    /// Skips the consent page (a client of the operator's own).
    #[serde(default)]
    first_party: bool,
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
    redirect_uris: Vec<String>,
    first_party: bool,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
    /// When the current secret was made; null for a public client.
    #[serde(with = "time::serde::rfc3339::option")]
    secret_created_at: Option<OffsetDateTime>,
    /// When the current secret stops working; null if it does not expire.
    #[serde(with = "time::serde::rfc3339::option")]
    secret_expires_at: Option<OffsetDateTime>,
    /// This client's own secret lifetime in seconds; null: `TESSERA_CLIENT_SECRET_MAX_AGE`.
    secret_max_age: Option<u64>,
    /// During a rotation's overlap, when the previous secret stops working; else null.
    #[serde(with = "time::serde::rfc3339::option")]
    previous_secret_expires_at: Option<OffsetDateTime>,
    /// The last successful authentication (recorded within a minute); null if never.
    #[serde(with = "time::serde::rfc3339::option")]
    last_used_at: Option<OffsetDateTime>,
    /// For each allowed scope, when a token carrying it was last issued to this client or its
    /// users (RFC 3339), or null: an allowed scope never used is a privilege to remove.
    #[schema(value_type = std::collections::BTreeMap<String, Option<String>>)]
    scope_usage: std::collections::BTreeMap<String, Option<String>>,
    /// `tss_…`, right after creation of a confidential client only.
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<String>,
}

/// RFC 3339, as every other time in the API.
fn rfc3339(at: OffsetDateTime) -> Option<String> {
    at.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

impl From<ClientDetails> for ClientView {
    fn from(details: ClientDetails) -> Self {
        ClientView::new(
            details.client,
            &details.usage,
            details.secret_expires_at,
            None,
        )
    }
}

impl ClientView {
    fn new(
        client: Client,
        usage: &ClientUsage,
        secret_expires_at: Option<OffsetDateTime>,
        secret: Option<String>,
    ) -> Self {
        Self {
            secret_created_at: client.secret_created_at,
            secret_expires_at,
            secret_max_age: client.secret_max_age.map(|a| a.as_secs()),
            previous_secret_expires_at: client.previous_secret.as_ref().map(|p| p.expires_at),
            last_used_at: usage.last_used_at,
            scope_usage: client
                .scopes
                .iter()
                .map(|s| (s.clone(), usage.scope_last_issued(s).and_then(rfc3339)))
                .collect(),
            public: client.is_public(),
            grant_types: client.grant_types.iter().map(|g| g.as_str()).collect(),
            client_id: client.client_id,
            name: client.name,
            scopes: client.scopes,
            audiences: client.audiences,
            admin: client.is_admin,
            introspect: client.can_introspect,
            disabled: client.disabled,
            redirect_uris: client.redirect_uris,
            first_party: client.first_party,
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
    /// When the current secret stops working; null if it does not expire.
    #[serde(with = "time::serde::rfc3339::option")]
    secret_expires_at: Option<OffsetDateTime>,
    /// When the previous secret stops working; null when it stopped at once.
    #[serde(with = "time::serde::rfc3339::option")]
    previous_secret_expires_at: Option<OffsetDateTime>,
}

/// The optional body of POST /admin/clients/{client_id}/secret.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecret {
    /// Seconds the old secret keeps working beside the new one (0 to 604800, default 0: it
    /// stops at once). Rotating again during an overlap replaces the previous secret.
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 604800)]
    previous_valid_for: Option<Value>,
    /// Sets this client's secret lifetime in seconds (60 to 4294967295); omitted, it keeps its
    /// own (or the global setting).
    #[schema(value_type = Option<i64>, minimum = 60, maximum = 4294967295_i64)]
    secret_max_age: Option<Value>,
}

/// A number of seconds from a JSON body, or 400 naming the field: taken as any JSON value so
/// that a string or a fraction is refused by name, not as a body that does not parse. The
/// range is the domain's to check.
fn whole_seconds(name: &'static str, value: Option<Value>) -> Result<Option<i64>, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value.as_i64().map(Some).ok_or_else(|| {
            Error::invalid_request(format!("{name}: a whole number of seconds")).into()
        }),
    }
}

/// The filters of GET /admin/clients: whole seconds, each optional.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ClientQuery {
    /// Clients not used (or, never used, created) for at least this many seconds.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 4294967295_i64)]
    unused_for: Option<String>,
    /// Confidential clients whose secret is at least this many seconds old.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 4294967295_i64)]
    secret_older_than: Option<String>,
}

/// The answer of GET /admin/clients.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientList {
    clients: Vec<ClientView>,
}

/// A filter's seconds, or 400 naming it.
fn seconds(
    name: &'static str,
    value: Option<&str>,
) -> Result<Option<std::time::Duration>, ApiError> {
    value
        .map(|v| {
            v.parse::<u32>()
                .map(|s| std::time::Duration::from_secs(s.into()))
                .map_err(|_| {
                    Error::invalid_request(format!(
                        "{name}: a whole number of seconds from 0 to 4294967295"
                    ))
                    .into()
                })
        })
        .transpose()
}

#[utoipa::path(
    get, path = "/admin/clients", tag = "admin", operation_id = "list_clients",
    params(ClientQuery),
    security(("client_secret_basic" = [])),
    responses(
        (status = 200, description = "The clients matching every filter given (every client without one), by id, never a secret", body = ClientList),
        ErrorResponses<{ BAD_REQUEST | UNAUTHORIZED | FORBIDDEN | UNAVAILABLE }>,
    )
)]
pub async fn list(
    State(app): State<AppState>,
    _admin: AdminClient,
    Query(query): Query<ClientQuery>,
) -> Result<Json<ClientList>, ApiError> {
    let unused_for = seconds("unused_for", query.unused_for.as_deref())?;
    let secret_older_than = seconds("secret_older_than", query.secret_older_than.as_deref())?;
    let clients = app
        .issuer
        .find_clients(unused_for, secret_older_than)
        .await?;
    Ok(Json(ClientList {
        clients: clients.into_iter().map(ClientView::from).collect(),
    }))
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
                secret_max_age: whole_seconds("secret_max_age", body.secret_max_age)?,
                redirect_uris: body.redirect_uris,
                first_party: body.first_party,
            },
            source.0,
        )
        .await?;
    let expires_at = app.issuer.secret_expires_at(&client);
    let view = ClientView::new(
        client,
        &ClientUsage::default(),
        expires_at,
        secret.map(|s| s.expose().to_owned()),
    );
    Ok((StatusCode::CREATED, no_store(), Json(view)).into_response())
}

#[utoipa::path(
    get, path = "/admin/clients/{client_id}", tag = "admin", operation_id = "get_client",
    params(("client_id" = String, Path, description = "The client's id")),
    security(("client_secret_basic" = [])),
    responses(
        (status = 200, description = "The client with its secret's age and its use, never its secret", body = ClientView),
        ErrorResponses<{ UNAUTHORIZED | FORBIDDEN | NOT_FOUND | UNAVAILABLE }>,
    )
)]
pub async fn get(
    State(app): State<AppState>,
    _admin: AdminClient,
    Path(client_id): Path<String>,
) -> Result<Json<ClientView>, ApiError> {
    Ok(Json(app.issuer.client_details(&client_id).await?.into()))
}

/// At least one field; each given replaces what the client has.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1)]
pub struct UpdateClient {
    disabled: Option<bool>,
    /// Replaces the list, validated as at registration.
    #[schema(max_items = 20)]
    redirect_uris: Option<Vec<String>>,
    first_party: Option<bool>,
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
    let change = ClientChange {
        disabled: body.disabled,
        redirect_uris: body.redirect_uris,
        first_party: body.first_party,
    };
    app.issuer
        .update_client(&admin.client_id, &client_id, change, source.0)
        .await?;
    Ok(Json(app.issuer.client_details(&client_id).await?.into()))
}

#[utoipa::path(
    post, path = "/admin/clients/{client_id}/secret", tag = "admin", operation_id = "rotate_client_secret",
    params(("client_id" = String, Path, description = "The client's id")),
    request_body(content = Option<RotateSecret>, description = "Optional; an empty body is `{\"previous_valid_for\": 0}`"),
    security(("client_secret_basic" = [])),
    responses(
        (status = 200, description = "A new generated secret, shown once; the old one keeps working for `previous_valid_for` seconds (at once stops without)", body = NewSecret, headers(("cache-control" = String, description = "no-store"), ("pragma" = String, description = "no-cache"))),
        ErrorResponses<{ BAD_REQUEST | UNAUTHORIZED | FORBIDDEN | NOT_FOUND | TOO_LARGE | UNAVAILABLE }>,
    )
)]
pub async fn rotate_secret(
    State(app): State<AppState>,
    source: SourceAddr,
    AdminClient(admin): AdminClient,
    Path(client_id): Path<String>,
    OptionalJsonBody(body): OptionalJsonBody<RotateSecret>,
) -> Result<Response, ApiError> {
    let request = SecretRequest {
        previous_valid_for: whole_seconds("previous_valid_for", body.previous_valid_for)?
            .unwrap_or(0),
        secret_max_age: whole_seconds("secret_max_age", body.secret_max_age)?,
    };
    let secret = app
        .issuer
        .rotate_client_secret(&admin.client_id, &client_id, request, source.0)
        .await?;
    let client = app.issuer.client(&client_id).await?;
    let body = NewSecret {
        secret_expires_at: app.issuer.secret_expires_at(&client),
        previous_secret_expires_at: client.previous_secret.map(|p| p.expires_at),
        client_id,
        client_secret: secret.expose().to_owned(),
    };
    Ok((no_store(), Json(body)).into_response())
}
