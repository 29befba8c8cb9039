//! GET /.well-known/oauth-authorization-server, the authorization server metadata (RFC 8414): only what this build serves (the authorization code flow with PKCE S256 and RFC 9207 `iss`); `scopes_supported` follows the registered clients. Uses: domain.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use crate::model::GrantType;

const AUTH_METHODS: [&str; 3] = ["client_secret_basic", "client_secret_post", "none"];

/// RFC 8414 §2: what this build serves.
#[derive(Serialize, ToSchema)]
pub struct Metadata<'a> {
    issuer: &'a str,
    /// Browser sign-in: the authorization code flow with PKCE (RFC 6749 §3.1).
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    revocation_endpoint: String,
    introspection_endpoint: String,
    /// `code` only: no implicit flow (RFC 9700 §2.1.2).
    #[schema(value_type = Vec<String>)]
    response_types_supported: [&'a str; 1],
    /// RFC 7636: PKCE is required for every client, and only `S256` is accepted.
    #[schema(value_type = Vec<String>)]
    code_challenge_methods_supported: [&'a str; 1],
    /// RFC 9207: every authorization response carries `iss`.
    authorization_response_iss_parameter_supported: bool,
    /// Omitting it would mean "authorization_code and implicit" (RFC 8414 §2).
    #[schema(value_type = Vec<String>)]
    grant_types_supported: [&'a str; 4],
    #[schema(value_type = Vec<String>)]
    token_endpoint_auth_methods_supported: [&'a str; 3],
    #[schema(value_type = Vec<String>)]
    revocation_endpoint_auth_methods_supported: [&'a str; 3],
    #[schema(value_type = Vec<String>)]
    introspection_endpoint_auth_methods_supported: [&'a str; 2],
    scopes_supported: Vec<String>,
    /// draft-ietf-oauth-status-list §9.1: `GET /statuslists`; absent when lists are off.
    #[serde(skip_serializing_if = "Option::is_none")]
    status_list_aggregation_endpoint: Option<String>,
}

#[utoipa::path(
    get, path = "/.well-known/oauth-authorization-server", tag = "discovery", operation_id = "metadata",
    responses((status = 200, description = "RFC 8414 authorization server metadata", body = Metadata))
)]
pub async fn get(State(app): State<AppState>) -> Response {
    let issuer = app.issuer.issuer();
    let metadata = Metadata {
        issuer,
        authorization_endpoint: format!("{issuer}/authorize"),
        token_endpoint: format!("{issuer}/token"),
        jwks_uri: format!("{issuer}/.well-known/jwks.json"),
        revocation_endpoint: format!("{issuer}/revoke"),
        introspection_endpoint: format!("{issuer}/introspect"),
        response_types_supported: ["code"],
        code_challenge_methods_supported: ["S256"],
        authorization_response_iss_parameter_supported: true,
        grant_types_supported: GrantType::ALL.map(GrantType::as_str),
        token_endpoint_auth_methods_supported: AUTH_METHODS,
        revocation_endpoint_auth_methods_supported: AUTH_METHODS,
        // Introspection is for confidential clients only.
        introspection_endpoint_auth_methods_supported: [
            "client_secret_basic",
            "client_secret_post",
        ],
        scopes_supported: app.issuer.registry().scopes(),
        status_list_aggregation_endpoint: app
            .issuer
            .status_lists_enabled()
            .then(|| format!("{issuer}/statuslists")),
    };
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        Json(metadata),
    )
        .into_response()
}
