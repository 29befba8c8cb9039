//! The OpenAPI 3.1 document (utoipa), assembled from the handlers' `#[utoipa::path]` annotations and the request and response types the handlers use, served at GET /openapi.json. Uses: the http handlers and their types.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::AppState;
use super::error::ErrorBody;

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
        super::statuslists::get,
        super::statuslists::aggregation,
        super::token::post,
        super::refresh::post,
        super::revoke::post,
        super::introspect::post,
        super::audit::get,
        super::metrics::get,
        get,
        super::admin::clients::create,
        super::admin::clients::list,
        super::admin::clients::get,
        super::admin::clients::update,
        super::admin::clients::rotate_secret,
        super::admin::users::create,
        super::admin::users::get,
        super::admin::users::update,
        super::admin::roles::put,
        super::admin::roles::get,
        super::admin::roles::list,
        super::admin::roles::delete,
        super::admin::keys::list,
        super::admin::keys::rotate,
    ),
    // Referred to by every `ErrorResponses`.
    components(schemas(ErrorBody)),
    modifiers(&ClientAuthentication),
    tags(
        (name = "oauth", description = "The OAuth 2.0 endpoints: tokens, refresh, revocation, introspection"),
        (name = "discovery", description = "Metadata (RFC 8414), the key set (RFC 7517) and the Token Status Lists (draft-ietf-oauth-status-list)"),
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
