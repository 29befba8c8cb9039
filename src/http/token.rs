//! POST /token (RFC 6749 §3.2, §4.1.3, §4.3, §4.4, §5, §6; RFC 7636 §4.5): parameters in, token or OAuth error out, never cached; its answer, shared with POST /refresh. Uses: domain.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::ToSchema;
use utoipa::openapi::{Object, ObjectBuilder, Type};

use super::auth::{ClientAuthorization, ClientForm, Rejection};
use super::error::{BAD_REQUEST, ErrorResponses, SLOW_DOWN, TOO_LARGE, UNAUTHORIZED, UNAVAILABLE};
use super::form::{Params, require};
use super::source::SourceAddr;
use super::{ApiError, AppState};
use crate::domain::Error;
use crate::domain::authorize::CodeExchange;
use crate::domain::token::{Target, TokenResponse};
use crate::model::GrantType;

/// POST /token (RFC 6749 §4.3, §4.4, §6). Each parameter at most once; an empty one counts as
/// absent.
// No `Debug`: it carries secrets.
#[derive(ToSchema)]
pub struct TokenRequest {
    #[schema(schema_with = grant_types)]
    grant_type: String,
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
    /// With `grant_type=authorization_code`: the `tsc_…` code from the redirect.
    code: Option<String>,
    /// With `grant_type=authorization_code`: exactly the one sent to /authorize.
    redirect_uri: Option<String>,
    /// With `grant_type=authorization_code`: the PKCE verifier (RFC 7636 §4.5) whose S256
    /// challenge was sent to /authorize.
    code_verifier: Option<String>,
    /// `client_secret_post`, or a public client's id (not with HTTP Basic of another id).
    client_id: Option<String>,
    /// `client_secret_post` (never together with HTTP Basic).
    #[schema(format = Password)]
    client_secret: Option<String>,
}

/// The grants of POST /token: [`GrantType`], the grants Tessera implements.
fn grant_types() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some("The grants of POST /token."))
        .enum_values(Some(GrantType::ALL.map(GrantType::as_str)))
        .build()
}

impl ClientForm for TokenRequest {
    fn from_params(mut params: Params) -> Result<Self, Error> {
        // The one parameter checked before the client is.
        let grant_type = require(&params.take("grant_type"), "grant_type")?.to_owned();
        Ok(Self {
            grant_type,
            scope: params.take("scope"),
            resource: params.take("resource"),
            audience: params.take("audience"),
            username: params.take("username"),
            password: params.take("password"),
            refresh_token: params.take("refresh_token"),
            code: params.take("code"),
            redirect_uri: params.take("redirect_uri"),
            code_verifier: params.take("code_verifier"),
            client_id: params.take("client_id"),
            client_secret: params.take("client_secret"),
        })
    }

    fn client_fields(&self) -> (Option<&str>, Option<&str>) {
        (self.client_id.as_deref(), self.client_secret.as_deref())
    }
}

/// The token endpoint (RFC 6749 §3.2): `authorization_code` (with PKCE), `client_credentials`,
/// `password` and `refresh_token`.
#[utoipa::path(
    post, path = "/token", tag = "oauth", operation_id = "token",
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    security((), ("client_secret_basic" = [])),
    responses(
        (status = 200, description = "An access token (and, for authorization_code, password and refresh, a refresh token when the client may refresh)", body = TokenResponse, headers(("cache-control" = String, description = "no-store"), ("pragma" = String, description = "no-cache"))),
        ErrorResponses<{ BAD_REQUEST | UNAUTHORIZED | TOO_LARGE | SLOW_DOWN | UNAVAILABLE }>,
    )
)]
pub async fn post(
    State(app): State<AppState>,
    source: SourceAddr,
    request: Result<ClientAuthorization<TokenRequest>, Rejection>,
) -> Response {
    let result = match request {
        Ok(request) => grant(&app, source, &request)
            .await
            .map_err(Rejection::Client),
        Err(rejection) => Err(rejection),
    };
    respond(result)
}

async fn grant(
    app: &AppState,
    source: SourceAddr,
    request: &ClientAuthorization<TokenRequest>,
) -> Result<TokenResponse, ApiError> {
    let ClientAuthorization { client, form, .. } = request;
    let scope = form.scope.as_deref();
    let target = Target {
        resource: form.resource.as_deref(),
        audience: form.audience.as_deref(),
    };
    async {
        match GrantType::parse(&form.grant_type) {
            Some(GrantType::ClientCredentials) => {
                app.issuer.client_credentials(client, scope, target).await
            }
            Some(GrantType::Password) => {
                let username = require(&form.username, "username")?;
                let password = require(&form.password, "password")?;
                app.issuer
                    .password(client, username, password, scope, target, source.0)
                    .await
            }
            Some(GrantType::RefreshToken) => {
                let token = require(&form.refresh_token, "refresh_token")?;
                let source = source.text();
                app.issuer
                    .refresh(client, token, scope, target, source.as_deref())
                    .await
            }
            Some(GrantType::AuthorizationCode) => {
                let exchange = CodeExchange {
                    code: require(&form.code, "code")?,
                    redirect_uri: require(&form.redirect_uri, "redirect_uri")?,
                    code_verifier: require(&form.code_verifier, "code_verifier")?,
                    target,
                    source_addr: source.0,
                };
                app.issuer.authorization_code(client, exchange).await
            }
            None => Err(Error::UnsupportedGrantType),
        }
    }
    .await
    .map_err(|e| request.refuse(e))
}

/// RFC 6749 §5.1: token responses, and their errors, are never cached. A body that is not a
/// form is refused before the endpoint, as on every other one.
pub(super) fn respond(result: Result<TokenResponse, Rejection>) -> Response {
    let mut response = match result {
        Ok(tokens) => Json(tokens).into_response(),
        Err(Rejection::Body(error)) => return error.into_response(),
        Err(Rejection::Client(error)) => {
            metrics::counter!(crate::metrics::TOKEN_ERRORS, "error" => error.code()).increment(1);
            error.into_response()
        }
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}
