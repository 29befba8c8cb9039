//! The one mapping from errors to responses: `{"error", "error_description"}` with the OAuth code (RFC 6749 §5.2), never a stack trace, SQL text or secret; and [`ErrorResponses`], how the OpenAPI document describes those answers. Uses: domain, utoipa.

use std::borrow::Cow;

use axum::Json;
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::{ContentBuilder, ObjectBuilder, Ref, RefOr, ResponseBuilder, Type};
use utoipa::{IntoResponses, ToSchema};

use crate::domain;

/// Seconds a client is asked to wait after a 503.
const RETRY_AFTER_SECONDS: &str = "5";

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    description: Cow<'static, str>,
    retry_after: Option<u64>,
    /// RFC 6749 §5.2: a 401 after HTTP Basic was tried carries a challenge.
    basic_challenge: bool,
}

/// Every error answer (RFC 6749 §5.2 shape).
#[derive(Serialize, ToSchema)]
pub struct ErrorBody<'a> {
    /// An OAuth error code where one applies (`invalid_request`, `invalid_client`,
    /// `invalid_grant`, …), else `not_found`, `method_not_allowed`, `conflict`,
    /// `temporarily_unavailable`, `server_error`.
    #[schema(example = "invalid_request")]
    pub error: &'a str,
    /// Human-readable; never echoes a secret or a value sent.
    pub error_description: &'a str,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        code: &'static str,
        description: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            status,
            code,
            description: description.into(),
            retry_after: None,
            basic_challenge: false,
        }
    }

    /// Adds `WWW-Authenticate: Basic realm="tessera"` to a 401.
    pub fn with_basic_challenge(mut self, basic_was_tried: bool) -> Self {
        self.basic_challenge = basic_was_tried && self.status == StatusCode::UNAUTHORIZED;
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
    }

    pub fn temporarily_unavailable(description: &'static str) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            description,
        )
    }

    /// The JSON body for a response that left a layer or the router without one (404, 405, 413,
    /// timeouts), chosen by status alone.
    fn for_status(status: StatusCode) -> Self {
        let (code, description) = match status {
            StatusCode::NOT_FOUND => ("not_found", "no such endpoint"),
            StatusCode::METHOD_NOT_ALLOWED => (
                "method_not_allowed",
                "this endpoint does not accept that method",
            ),
            StatusCode::PAYLOAD_TOO_LARGE => {
                ("invalid_request", "the request body is larger than 64 KiB")
            }
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ("invalid_request", "unsupported content type"),
            StatusCode::REQUEST_TIMEOUT | StatusCode::SERVICE_UNAVAILABLE => (
                "temporarily_unavailable",
                "the request took too long; try again",
            ),
            s if s.is_server_error() => ("server_error", "internal error"),
            _ => ("invalid_request", "the request is malformed"),
        };
        Self::new(status, code, description)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code,
            error_description: &self.description,
        };
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        } else if self.status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECONDS),
            );
        }
        if self.basic_challenge {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"tessera\""),
            );
        }
        response
    }
}

impl From<domain::Error> for ApiError {
    fn from(error: domain::Error) -> Self {
        use domain::Error as E;
        let bad = |code, text: &'static str| Self::new(StatusCode::BAD_REQUEST, code, text);
        match error {
            E::InvalidRequest(text) => Self::new(StatusCode::BAD_REQUEST, "invalid_request", text),
            E::InvalidClient => Self::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication failed",
            ),
            E::ClientSecretExpired => Self::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client secret expired",
            ),
            E::InvalidGrant => bad(
                "invalid_grant",
                "the grant is invalid, expired or revoked, or the credentials are wrong",
            ),
            E::InvalidScope => bad(
                "invalid_scope",
                "the requested scope is not allowed for this client",
            ),
            E::InvalidTarget => bad(
                "invalid_target",
                "the requested audience is not allowed for this client",
            ),
            E::UnauthorizedClient => bad(
                "unauthorized_client",
                "this client may not use this grant type",
            ),
            E::UnsupportedGrantType => bad(
                "unsupported_grant_type",
                "supported: client_credentials, password, refresh_token",
            ),
            E::AccessDenied => Self::new(
                StatusCode::FORBIDDEN,
                "access_denied",
                "this client is not allowed to do that",
            ),
            E::NotFound(what) => Self::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no such {what}"),
            ),
            E::Conflict(text) => Self::new(StatusCode::CONFLICT, "conflict", text),
            E::TooSoon {
                text,
                retry_after_seconds,
            } => Self {
                retry_after: Some(retry_after_seconds),
                ..Self::new(StatusCode::CONFLICT, "conflict", text)
            },
            E::Throttled {
                retry_after_seconds,
            } => Self {
                retry_after: Some(retry_after_seconds),
                ..Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "slow_down",
                    "too many failed attempts; retry later",
                )
            },
            E::Busy => Self::temporarily_unavailable("too many logins at once; retry shortly"),
            E::TemporarilyUnavailable => {
                Self::temporarily_unavailable("the database is not answering; try again shortly")
            }
            E::Internal(source) => {
                // Logged once, here; the client learns nothing about the inside.
                tracing::error!(error = %source, "internal error");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "internal error",
                )
            }
        }
    }
}

/// Gives every error response a JSON body: axum's 404/405, tower-http's 413 and timeouts come
/// without one. Headers such as `Allow` and `Retry-After` are kept. The browser pages' own
/// HTML errors (`pages`) are left as they are.
pub async fn json_error_bodies<B>(response: Response<B>) -> Response
where
    B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let status = response.status();
    let is_json_or_page = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/html"));
    if is_json_or_page || !(status.is_client_error() || status.is_server_error()) {
        return response.map(Body::new);
    }
    let (mut parts, _) = response.into_parts();
    let replacement = ApiError::for_status(status).into_response();
    let (new_parts, body) = replacement.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.extend(new_parts.headers);
    Response::from_parts(parts, Body::new(body))
}

/// The response to a handler panic: logged without its payload (it may hold values), answered
/// as a bare `server_error`.
pub fn panic_response(_payload: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        "internal error",
    )
    .into_response()
}

/// The error answers of one operation in the OpenAPI document, each described once here and
/// chosen by status bits: `ErrorResponses<{ BAD_REQUEST | UNAUTHORIZED }>`. Every one has the
/// [`ErrorBody`] shape that [`ApiError`] sends.
pub struct ErrorResponses<const STATUSES: u16>;

pub const BAD_REQUEST: u16 = 1;
pub const UNAUTHORIZED: u16 = 1 << 1;
pub const FORBIDDEN: u16 = 1 << 2;
pub const NOT_FOUND: u16 = 1 << 3;
pub const CONFLICT: u16 = 1 << 4;
pub const TOO_LARGE: u16 = 1 << 5;
pub const SLOW_DOWN: u16 = 1 << 6;
pub const UNAVAILABLE: u16 = 1 << 7;

/// Status bit, status, description, and the header the answer may carry.
const DOCUMENTED: [(u16, &str, &str, Option<&str>); 8] = [
    (
        BAD_REQUEST,
        "400",
        "Malformed, missing or repeated parameter, or an OAuth error (RFC 6749 §5.2)",
        None,
    ),
    (
        UNAUTHORIZED,
        "401",
        "Client authentication failed (`invalid_client`); `WWW-Authenticate: Basic` when Basic was tried",
        Some("www-authenticate"),
    ),
    (
        FORBIDDEN,
        "403",
        "Authenticated, but not allowed (`access_denied`)",
        None,
    ),
    (
        NOT_FOUND,
        "404",
        "No such client, user or key (`not_found`)",
        None,
    ),
    (
        CONFLICT,
        "409",
        "Conflicts with the current state (`conflict`)",
        None,
    ),
    (TOO_LARGE, "413", "The body is larger than 64 KiB", None),
    (
        SLOW_DOWN,
        "429",
        "Too many failed attempts (`slow_down`)",
        Some("retry-after"),
    ),
    (
        UNAVAILABLE,
        "503",
        "The database is not answering, or too many logins at once (`temporarily_unavailable`)",
        Some("retry-after"),
    ),
];

impl<const STATUSES: u16> IntoResponses for ErrorResponses<STATUSES> {
    fn responses() -> std::collections::BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        DOCUMENTED
            .iter()
            .filter(|(bit, ..)| STATUSES & bit != 0)
            .map(|&(_, status, description, header)| {
                let body = ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name(ErrorBody::name())))
                    .build();
                let mut response = ResponseBuilder::new()
                    .description(description)
                    .content("application/json", body);
                if let Some(name) = header {
                    let string = ObjectBuilder::new().schema_type(Type::String).build();
                    response =
                        response.header(name, HeaderBuilder::new().schema(Some(string)).build());
                }
                (status.to_owned(), RefOr::T(response.build()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_responses_document_the_statuses_asked_for() {
        let responses = ErrorResponses::<{ BAD_REQUEST | SLOW_DOWN | UNAVAILABLE }>::responses();
        assert_eq!(
            responses.keys().map(String::as_str).collect::<Vec<_>>(),
            ["400", "429", "503"]
        );
        let all = ErrorResponses::<{ u16::MAX }>::responses();
        assert_eq!(all.len(), DOCUMENTED.len());
    }
}
