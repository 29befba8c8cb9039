//! POST /refresh: the `refresh_token` grant, its body a form or a JSON object (CONTRACT: POST /refresh), answered as POST /token answers. Uses: domain.

use axum::extract::State;
use axum::response::Response;
use utoipa::ToSchema;

use super::AppState;
use super::auth::{ClientAuthorization, ClientForm, Rejection};
use super::error::{BAD_REQUEST, ErrorResponses, TOO_LARGE, UNAUTHORIZED, UNAVAILABLE};
use super::form::{Params, require};
use super::source::SourceAddr;
use super::token::respond;
use crate::domain::Error;
use crate::domain::token::{Target, TokenResponse};

/// POST /refresh: the `refresh_token` grant, as JSON or as a form.
// No `Debug`: it carries secrets.
#[derive(ToSchema)]
pub struct RefreshRequest {
    /// `tsr_…`
    #[schema(value_type = String, required = true, min_length = 1)]
    refresh_token: Option<String>,
    /// May narrow the session's scope, never widen it.
    scope: Option<String>,
    /// As at POST /token (RFC 8707), though not advertised here.
    #[schema(ignore)]
    resource: Option<String>,
    #[schema(ignore)]
    audience: Option<String>,
    client_id: Option<String>,
    #[schema(format = Password)]
    client_secret: Option<String>,
}

impl ClientForm for RefreshRequest {
    const JSON: bool = true;

    fn from_params(mut params: Params) -> Result<Self, Error> {
        Ok(Self {
            refresh_token: params.take("refresh_token"),
            scope: params.take("scope"),
            resource: params.take("resource"),
            audience: params.take("audience"),
            client_id: params.take("client_id"),
            client_secret: params.take("client_secret"),
        })
    }

    fn client_fields(&self) -> (Option<&str>, Option<&str>) {
        (self.client_id.as_deref(), self.client_secret.as_deref())
    }
}

/// POST /refresh: the refresh_token grant, its body a form or a JSON object (CONTRACT: POST /refresh).
#[utoipa::path(
    post, path = "/refresh", tag = "oauth", operation_id = "refresh",
    request_body(content(
        (RefreshRequest = "application/json"),
        (RefreshRequest = "application/x-www-form-urlencoded"),
    )),
    security((), ("client_secret_basic" = [])),
    responses(
        (status = 200, description = "A fresh access token and the successor refresh token", body = TokenResponse, headers(("cache-control" = String, description = "no-store"), ("pragma" = String, description = "no-cache"))),
        ErrorResponses<{ BAD_REQUEST | UNAUTHORIZED | TOO_LARGE | UNAVAILABLE }>,
    )
)]
pub async fn post(
    State(app): State<AppState>,
    source: SourceAddr,
    request: Result<ClientAuthorization<RefreshRequest>, Rejection>,
) -> Response {
    let request = match request {
        Ok(request) => request,
        Err(rejection) => return respond(Err(rejection)),
    };
    let ClientAuthorization { client, form, .. } = &request;
    let result = async {
        let token = require(&form.refresh_token, "refresh_token")?;
        let target = Target {
            resource: form.resource.as_deref(),
            audience: form.audience.as_deref(),
        };
        let source = source.text();
        app.issuer
            .refresh(
                client,
                token,
                form.scope.as_deref(),
                target,
                source.as_deref(),
            )
            .await
    }
    .await
    .map_err(|e| Rejection::Client(request.refuse(e)));
    respond(result)
}
