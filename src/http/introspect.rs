//! POST /introspect (RFC 7662), for clients allowed to introspect and admins: the claims of a live token, else `{"active": false}`. Uses: domain.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::ToSchema;

use super::auth::{ClientAuthorization, ClientForm};
use super::error::{BAD_REQUEST, ErrorResponses, FORBIDDEN, TOO_LARGE, UNAUTHORIZED, UNAVAILABLE};
use super::form::{Params, require};
use super::{ApiError, AppState};
use crate::domain::Error;
use crate::domain::revoke::Introspection;

/// POST /introspect (RFC 7662 §2.1).
// No `Debug`: it carries secrets.
#[derive(ToSchema)]
pub struct IntrospectRequest {
    #[schema(value_type = String, required = true, min_length = 1)]
    token: Option<String>,
    /// `access_token` or `refresh_token` (RFC 7009 §2.1); a hint only: every kind is tried.
    #[schema(rename = "token_type_hint", value_type = Option<String>)]
    _token_type_hint: (),
    client_id: Option<String>,
    #[schema(format = Password)]
    client_secret: Option<String>,
}

impl ClientForm for IntrospectRequest {
    fn from_params(mut params: Params) -> Result<Self, Error> {
        Ok(Self {
            token: params.take("token"),
            _token_type_hint: (),
            client_id: params.take("client_id"),
            client_secret: params.take("client_secret"),
        })
    }

    fn client_fields(&self) -> (Option<&str>, Option<&str>) {
        (self.client_id.as_deref(), self.client_secret.as_deref())
    }
}

/// RFC 7662 introspection, for clients allowed to introspect and admins.
#[utoipa::path(
    post, path = "/introspect", tag = "oauth", operation_id = "introspect",
    request_body(content = IntrospectRequest, content_type = "application/x-www-form-urlencoded"),
    security((), ("client_secret_basic" = [])),
    responses(
        (status = 200, description = "The claims of a live token, else only `{\"active\": false}`", body = Introspection, headers(("cache-control" = String, description = "no-store"))),
        ErrorResponses<{ BAD_REQUEST | UNAUTHORIZED | FORBIDDEN | TOO_LARGE | UNAVAILABLE }>,
    )
)]
pub async fn post(
    State(app): State<AppState>,
    request: ClientAuthorization<IntrospectRequest>,
) -> Result<Response, ApiError> {
    let ClientAuthorization { client, form, .. } = &request;
    let answer = async {
        let token = require(&form.token, "token")?;
        app.issuer.introspect(client, token).await
    }
    .await
    .map_err(|e| request.refuse(e))?;
    Ok((
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Json(answer),
    )
        .into_response())
}
