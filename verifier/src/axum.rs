//! The axum side: the [`VerifiedToken`] extractor and the [`RequireToken`] tower layer, with
//! RFC 6750 §3 answers.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{FromRef, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::{Claims, Rejection, Verifier};

/// The claims of a request's verified access token.
///
/// As an extractor it verifies the `Authorization: Bearer` token with the [`Verifier`] in the
/// router's state (or takes the claims [`RequireToken`] already verified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken(pub Claims);

impl VerifiedToken {
    /// Refuses with 403 `insufficient_scope` unless the token carries `scope`.
    pub fn require_scope(&self, scope: &str) -> Result<(), AuthError> {
        if self.0.has_scope(scope) {
            Ok(())
        } else {
            Err(AuthError::insufficient_scope(scope))
        }
    }
}

impl std::ops::Deref for VerifiedToken {
    type Target = Claims;

    fn deref(&self) -> &Claims {
        &self.0
    }
}

/// A refused request. The answer says only what RFC 6750 §3 lets it say; the cause goes to
/// the `tessera_verifier_rejections_total{cause}` counter and a tracing event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// No bearer token at all: 401 with a bare `WWW-Authenticate: Bearer` (RFC 6750 §3.1).
    Missing,
    /// 401 `invalid_token`, whatever the cause.
    InvalidToken(Rejection),
    /// 403 `insufficient_scope` naming the scope needed.
    InsufficientScope(String),
}

impl AuthError {
    pub fn insufficient_scope(scope: &str) -> Self {
        record("insufficient_scope");
        AuthError::InsufficientScope(scope.to_owned())
    }

    fn invalid(rejection: Rejection) -> Self {
        record(rejection.cause());
        AuthError::InvalidToken(rejection)
    }
}

fn record(cause: &'static str) {
    metrics::counter!("tessera_verifier_rejections_total", "cause" => cause).increment(1);
    tracing::info!(cause, "tessera-verifier: request refused");
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let (status, challenge, body) = match &self {
            AuthError::Missing => (
                StatusCode::UNAUTHORIZED,
                "Bearer".to_owned(),
                r#"{"error":"invalid_request","error_description":"a bearer token is required"}"#
                    .to_owned(),
            ),
            AuthError::InvalidToken(_) => (
                StatusCode::UNAUTHORIZED,
                r#"Bearer error="invalid_token""#.to_owned(),
                r#"{"error":"invalid_token","error_description":"the access token is not valid"}"#
                    .to_owned(),
            ),
            AuthError::InsufficientScope(scope) => {
                // Scope tokens are %x21 / %x23-5B / %x5D-7E (RFC 6749 §3.3): no quote or
                // backslash can break out of the quoted string.
                let challenge = format!(r#"Bearer error="insufficient_scope", scope="{scope}""#);
                let body = serde_json::json!({
                    "error": "insufficient_scope",
                    "error_description": format!("the access token lacks the scope {scope}"),
                    "scope": scope,
                });
                (StatusCode::FORBIDDEN, challenge, body.to_string())
            }
        };
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            headers.insert(WWW_AUTHENTICATE, value);
        }
        response
    }
}

/// The bearer token of `Authorization` (RFC 6750 §2.1; the scheme is case-insensitive).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Verifies the request's bearer token and checks it carries every scope of `scopes`.
pub async fn authorize(
    verifier: &Verifier,
    headers: &HeaderMap,
    scopes: &[String],
) -> Result<Claims, AuthError> {
    let token = bearer(headers).ok_or_else(|| {
        record("missing");
        AuthError::Missing
    })?;
    let claims = verifier.verify(token).await.map_err(AuthError::invalid)?;
    if let Some(missing) = scopes.iter().find(|s| !claims.has_scope(s)) {
        return Err(AuthError::insufficient_scope(missing));
    }
    Ok(claims)
}

impl<S> FromRequestParts<S> for VerifiedToken
where
    Verifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AuthError> {
        if let Some(claims) = parts.extensions.get::<Claims>() {
            return Ok(VerifiedToken(claims.clone()));
        }
        let verifier = Verifier::from_ref(state);
        authorize(&verifier, &parts.headers, &[])
            .await
            .map(VerifiedToken)
    }
}

/// A tower layer that lets through only requests with a valid token carrying every required
/// scope, and hands the claims to the handler (as a request extension, which [`VerifiedToken`]
/// reads). Put one per route or router: `.route_layer(RequireToken::new(verifier).scope("write"))`.
#[derive(Clone)]
pub struct RequireToken {
    verifier: Verifier,
    scopes: Arc<[String]>,
}

impl RequireToken {
    pub fn new(verifier: Verifier) -> Self {
        Self {
            verifier,
            scopes: Arc::new([]),
        }
    }

    /// Also requires `scope`.
    pub fn scope(self, scope: impl Into<String>) -> Self {
        let mut scopes = self.scopes.to_vec();
        scopes.push(scope.into());
        Self {
            verifier: self.verifier,
            scopes: scopes.into(),
        }
    }
}

impl<S> tower_layer::Layer<S> for RequireToken {
    type Service = RequireTokenService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireTokenService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`RequireToken`] wraps around a route.
#[derive(Clone)]
pub struct RequireTokenService<S> {
    inner: S,
    layer: RequireToken,
}

impl<S> tower_service::Service<Request> for RequireTokenService<S>
where
    S: tower_service::Service<Request, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        // The clone that was polled ready serves this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            match authorize(&layer.verifier, request.headers(), &layer.scopes).await {
                Ok(claims) => {
                    request.extensions_mut().insert(claims);
                    inner.call(request).await
                }
                Err(refused) => Ok(refused.into_response()),
            }
        })
    }
}
