//! The HTTP edge: router, layers and handlers. The only module that uses axum; each handler extracts, calls one domain function and returns. Uses: domain, model.
//!
//! # Layout
//! One endpoint per file, named after its path (`token.rs` is POST /token, `audit.rs` is
//! GET /admin/audit), with its request and response types, which are also what the OpenAPI
//! document shows. Two groupings read better than one file each: `health.rs` holds both probes,
//! and `admin/` holds one file per resource (clients, users, keys). Shared by all: `auth.rs`
//! (client authentication, the [`ClientAuthorization`](auth::ClientAuthorization) extractor),
//! `form.rs` (request bodies), `error.rs` (the one error mapping and its documented answers),
//! `openapi.rs` (the document). Serving and signals live in `crate::server`.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, Request, StatusCode};
use axum::routing::{get, post};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{
    MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnFailure, DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::domain::Issuer;

mod admin;
mod audit;
mod auth;
mod cross_site;
mod error;
mod form;
mod health;
mod introspect;
mod jwks;
mod metadata;
mod metrics;
mod openapi;
mod pages;
mod refresh;
mod revoke;
pub mod source;
mod statuslists;
mod token;

pub use error::ApiError;

/// Request bodies above this get 413 (CONTRACT: common rules).
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What every handler can reach: one shared allocation, so the clone each layer and
/// extractor takes per request is one reference count.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The state behind [`AppState`].
#[derive(Clone)]
pub struct Shared {
    pub issuer: Arc<Issuer>,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// `Cache-Control` of the JWKS, rendered once.
    jwks_cache_control: axum::http::HeaderValue,
    /// GET /openapi.json, rendered once.
    openapi: bytes::Bytes,
    /// Whose `X-Forwarded-For` names the source address (`source.rs`).
    trusted_proxies: Arc<source::TrustedProxies>,
    /// The issuer's origin: an `Origin` other than this marks a cross-site request.
    issuer_origin: url::Origin,
    /// Tags the anti-forgery tokens of the browser pages' forms.
    form_key: Arc<crate::crypto::form_tokens::FormKey>,
}

impl AppState {
    pub fn new(issuer: Arc<Issuer>, jwks_max_age: Duration) -> Self {
        let jwks_cache_control = format!("public, max-age={}", jwks_max_age.as_secs())
            .parse()
            .expect("a valid header value");
        let issuer_origin = url::Url::parse(issuer.issuer())
            .map_or_else(|_| url::Origin::new_opaque(), |url| url.origin());
        Self(Arc::new(Shared {
            issuer,
            issuer_origin,
            metrics: crate::metrics::handle(),
            jwks_cache_control,
            openapi: openapi::document(),
            trusted_proxies: Arc::default(),
            // Until `with_form_key`: forms of this process only.
            form_key: Arc::new(crate::crypto::form_tokens::FormKey::random()),
        }))
    }

    /// The key of the pages' form tokens, shared by every instance (derived from the master key).
    pub fn with_form_key(mut self, key: crate::crypto::form_tokens::FormKey) -> Self {
        Arc::make_mut(&mut self.0).form_key = Arc::new(key);
        self
    }

    /// Cookies are `Secure` and `__Host-` prefixed on an https issuer.
    fn secure_cookies(&self) -> bool {
        matches!(&self.issuer_origin, url::Origin::Tuple(scheme, ..) if scheme == "https")
    }
}

/// The whole HTTP surface with its layers.
pub fn router(state: AppState, request_timeout: Duration) -> Router {
    let layers = ServiceBuilder::new()
        // A handler panic answers a JSON 500 instead of dropping the connection.
        .layer(CatchPanicLayer::custom(error::panic_response))
        .layer(axum::middleware::map_request(drop_unusable_request_id))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                // The access log is `debug`: at `info` it was a line per request (a 4-minute
                // load wrote 2 million lines, 555 MB). Request counts and latencies are in
                // /metrics; security events keep their own lines at `info` and `warn`.
                .on_response(DefaultOnResponse::new().level(Level::DEBUG))
                // A 503 under a login flood is expected back-pressure, not an error to page on;
                // real faults are logged once, at ERROR, where they happen.
                .on_failure(DefaultOnFailure::new().level(Level::DEBUG)),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(axum::middleware::map_response::<_, ()>(
            error::json_error_bodies::<tower_http::limit::ResponseBody<axum::body::Body>>,
        ))
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT_BYTES))
        // A handler that overruns (a stuck database, say) answers 503 instead of hanging.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            request_timeout,
        ));

    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route(
            "/.well-known/oauth-authorization-server",
            get(metadata::get),
        )
        .route("/.well-known/jwks.json", get(jwks::get))
        .route("/statuslists", get(statuslists::aggregation))
        .route("/statuslists/{id}", get(statuslists::get))
        .route("/token", post(token::post))
        .route("/refresh", post(refresh::post))
        .route("/revoke", post(revoke::post))
        .route("/introspect", post(introspect::post))
        .route("/admin/audit", get(audit::get))
        .route("/metrics", get(metrics::get))
        .route("/openapi.json", get(openapi::get))
        .route(
            "/admin/clients",
            get(admin::clients::list).post(admin::clients::create),
        )
        .route(
            "/admin/clients/{client_id}",
            get(admin::clients::get).patch(admin::clients::update),
        )
        .route(
            "/admin/clients/{client_id}/secret",
            post(admin::clients::rotate_secret),
        )
        .route("/admin/users", post(admin::users::create))
        .route(
            "/admin/users/{user_id}",
            get(admin::users::get).patch(admin::users::update),
        )
        .route("/admin/roles", get(admin::roles::list))
        .route(
            "/admin/roles/{name}",
            get(admin::roles::get)
                .put(admin::roles::put)
                .delete(admin::roles::delete),
        )
        .route("/admin/keys", get(admin::keys::list))
        .route("/admin/keys/rotate", post(admin::keys::rotate))
        // The browser pages: HTML answers, not the JSON error shape (`pages`).
        .merge(pages::router())
        .fallback(|| async { ApiError::not_found() })
        // State-changing requests to /admin/*, /revoke and the pages' forms that a browser marks
        // cross-site.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            cross_site::refuse,
        ))
        .with_state(state)
        // Inside the router, so the matched route template (never the raw path) is the label.
        .layer(axum::middleware::from_fn(track_latency))
        .layer(layers)
}

/// Records `tessera_http_request_duration_seconds{route, status}`.
async fn track_latency(
    request: Request<axum::body::Body>,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    ::metrics::histogram!(
        crate::metrics::HTTP_REQUEST_DURATION,
        "route" => route,
        "status" => response.status().as_u16().to_string()
    )
    .record(started.elapsed().as_secs_f64());
    response
}

/// A caller's request id is kept for correlation only if it is short and plain; anything else
/// is replaced by a fresh UUID, so logs never carry arbitrary caller text.
async fn drop_unusable_request_id(
    mut request: Request<axum::body::Body>,
) -> Request<axum::body::Body> {
    let usable = request.headers().get(&REQUEST_ID).is_none_or(|value| {
        let bytes = value.as_bytes();
        !bytes.is_empty()
            && bytes.len() <= 64
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(b))
    });
    if !usable {
        request.headers_mut().remove(&REQUEST_ID);
    }
    request
}

/// The span of one request: method, path and request id. Never the query string, headers or
/// body, where credentials and tokens travel.
fn request_span<B>(request: &Request<B>) -> tracing::Span {
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or("-");
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %request_id,
        // Recorded once the client is authenticated (`Issuer::authenticate_client`).
        client_id = tracing::field::Empty,
    )
}
