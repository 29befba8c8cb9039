//! The OpenAPI 3.1 document (utoipa), assembled from the handlers' `#[utoipa::path]` annotations and the request and response types, served at GET /openapi.json. Uses: domain.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use super::AppState;

/// The document, rendered once when the router is built.
pub fn document() -> bytes::Bytes {
    serde_json::to_vec(&ApiDoc::openapi())
        .expect("the OpenAPI document serialises")
        .into()
}

/// GET /openapi.json: this document.
#[utoipa::path(
    get, path = "/openapi.json", tag = "operations", operation_id = "openapi",
    responses((status = 200, description = "The OpenAPI 3.1 document of every endpoint", content_type = "application/json", body = Object))
)]
pub async fn get(State(app): State<AppState>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        app.openapi.clone(),
    )
        .into_response()
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tessera",
        description = "A standalone token issuer and authorization server: short-lived JWT access tokens (RFC 9068), rotating refresh tokens with reuse detection, a JWKS, revocation (RFC 7009) and introspection (RFC 7662). Every error is `{\"error\", \"error_description\"}`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        super::health::healthz,
        super::health::readyz,
        super::metadata::get,
        super::jwks::get,
        super::token::post,
        super::token::refresh,
        super::revoke::revoke,
        super::revoke::introspect,
        super::revoke::audit,
        super::metrics_text,
        get,
        super::admin::create_client,
        super::admin::get_client,
        super::admin::update_client,
        super::admin::rotate_client_secret,
        super::admin::create_user,
        super::admin::update_user,
        super::admin::list_keys,
        super::admin::rotate_keys,
    ),
    modifiers(&ClientAuthentication),
    tags(
        (name = "oauth", description = "The OAuth 2.0 endpoints: tokens, refresh, revocation, introspection"),
        (name = "discovery", description = "Metadata (RFC 8414) and the key set (RFC 7517)"),
        (name = "admin", description = "The admin API, for admin clients (HTTP Basic)"),
        (name = "operations", description = "Probes, metrics and this document"),
    )
)]
struct ApiDoc;

/// `client_secret_basic`: HTTP Basic with the form-encoded client id and secret (RFC 6749
/// §2.3.1). `client_secret_post` travels in the form and is described with each form.
struct ClientAuthentication;

impl Modify for ClientAuthentication {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "client_secret_basic",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "The client id and secret, each form-urlencoded first (RFC 6749 §2.3.1)",
                    ))
                    .build(),
            ),
        );
    }
}

/// Every error answer (RFC 6749 §5.2 shape).
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// An OAuth error code where one applies (`invalid_request`, `invalid_client`,
    /// `invalid_grant`, …), else `not_found`, `method_not_allowed`, `conflict`,
    /// `temporarily_unavailable`, `server_error`.
    #[schema(example = "invalid_request")]
    pub error: String,
    /// Human-readable; never echoes a secret or a value sent.
    pub error_description: String,
}

/// `{"status": "ok"}` or `{"status": "ready"}`.
#[derive(Serialize, ToSchema)]
pub struct Status {
    #[schema(example = "ok")]
    pub status: String,
}

/// The grants of POST /token.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum GrantType {
    ClientCredentials,
    Password,
    RefreshToken,
}

/// POST /token (RFC 6749 §4.3, §4.4, §6). Each parameter at most once; an empty one counts as
/// absent.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TokenRequest {
    grant_type: GrantType,
    /// Space-delimited scope tokens (RFC 6749 §3.3), a subset of the client's.
    scope: Option<String>,
    /// RFC 8707: one of the client's audiences (or send `audience`, not both).
    resource: Option<String>,
    audience: Option<String>,
    /// With `grant_type=password`.
    username: Option<String>,
    /// With `grant_type=password`.
    #[schema(format = Password)]
    password: Option<String>,
    /// With `grant_type=refresh_token`.
    refresh_token: Option<String>,
    /// `client_secret_post`, or a public client's id (not with HTTP Basic of another id).
    client_id: Option<String>,
    /// `client_secret_post` (never together with HTTP Basic).
    #[schema(format = Password)]
    client_secret: Option<String>,
}

/// POST /refresh: the `refresh_token` grant, as JSON or as a form.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct RefreshRequest {
    /// `tsr_…`
    #[schema(min_length = 1)]
    refresh_token: String,
    /// May narrow the session's scope, never widen it.
    scope: Option<String>,
    client_id: Option<String>,
    #[schema(format = Password)]
    client_secret: Option<String>,
}

/// POST /revoke: `token` (RFC 7009), or, for admin clients, exactly one selector.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct RevokeRequest {
    /// An access or refresh token (RFC 7009 §2.1).
    token: Option<String>,
    /// `access_token` or `refresh_token` (RFC 7009 §2.1); a hint only: every kind is tried.
    token_type_hint: Option<String>,
    /// Admin: a user id or username; every session and access token of that subject.
    subject: Option<String>,
    /// Admin (with HTTP Basic): everything issued to that client. With `client_secret_post`
    /// it is the caller's own id.
    client_id: Option<String>,
    /// Admin: one session.
    session_id: Option<String>,
    /// Admin: a signing key's compromise.
    kid: Option<String>,
    /// With `subject` or `client_id`: also disable the user or client.
    disable: Option<bool>,
    #[schema(format = Password)]
    client_secret: Option<String>,
}

/// The answer of POST /revoke: `{}` for a token, the summary for an admin selector.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct RevokeAnswer {
    /// `subject`, `client_id`, `session_id` or `kid`.
    selector: Option<String>,
    value: Option<String>,
    /// Refresh-token families (sessions) revoked; client_credentials tokens and `kid` count none.
    sessions_revoked: Option<u64>,
    /// Whether the user or client is now disabled.
    disabled: Option<bool>,
}

/// POST /introspect (RFC 7662 §2.1).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct IntrospectRequest {
    #[schema(min_length = 1)]
    token: String,
    /// `access_token` or `refresh_token` (RFC 7009 §2.1); a hint only: every kind is tried.
    token_type_hint: Option<String>,
    client_id: Option<String>,
    #[schema(format = Password)]
    client_secret: Option<String>,
}

/// RFC 7662 §2.2: the claims of a live token, or only `{"active": false}`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Introspection {
    active: bool,
    /// `Bearer` for an access token, `refresh_token` for a refresh token.
    token_type: Option<String>,
    sub: Option<String>,
    client_id: Option<String>,
    scope: Option<String>,
    aud: Option<String>,
    iss: Option<String>,
    exp: Option<i64>,
    iat: Option<i64>,
    jti: Option<String>,
    sid: Option<String>,
}

/// RFC 8414 §2: what this build serves.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Metadata {
    issuer: String,
    token_endpoint: String,
    jwks_uri: String,
    revocation_endpoint: String,
    introspection_endpoint: String,
    response_types_supported: Vec<String>,
    grant_types_supported: Vec<String>,
    token_endpoint_auth_methods_supported: Vec<String>,
    revocation_endpoint_auth_methods_supported: Vec<String>,
    introspection_endpoint_auth_methods_supported: Vec<String>,
    scopes_supported: Vec<String>,
}

/// RFC 7517 §5: public keys only.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Jwks {
    keys: Vec<Jwk>,
}

/// A public JWK (RFC 7517 §4) with the parameters of its key type (RFC 7518 §6, RFC 8037).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Jwk {
    kid: String,
    /// `EC`, `OKP` or `RSA`.
    kty: String,
    alg: String,
    #[schema(rename = "use")]
    key_use: String,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

/// A signing key as GET /admin/keys lists it.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct KeyInfo {
    kid: String,
    alg: String,
    /// `next`, `active`, `retired` or `revoked`.
    state: String,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    activated_at: Option<String>,
    #[schema(format = DateTime)]
    retired_at: Option<String>,
    #[schema(format = DateTime)]
    revoked_at: Option<String>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct KeyList {
    keys: Vec<KeyInfo>,
}

/// POST /admin/keys/rotate: the key that signs now.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Rotated {
    kid: String,
}

/// POST /admin/clients/{client_id}/secret: the new secret, shown once.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct NewSecret {
    client_id: String,
    #[schema(format = Password)]
    client_secret: String,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct AuditEvents {
    events: Vec<super::revoke::AuditView>,
}
