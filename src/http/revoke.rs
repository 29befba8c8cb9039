//! POST /revoke: token revocation (RFC 7009) and the admin selectors (a subject, a client, a session, a key). Uses: domain.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::{ClientAuthorization, ClientForm};
use super::error::{
    BAD_REQUEST, CONFLICT, ErrorResponses, FORBIDDEN, NOT_FOUND, TOO_LARGE, UNAUTHORIZED,
    UNAVAILABLE,
};
use super::form::Params;
use super::source::SourceAddr;
use super::{ApiError, AppState};
use crate::domain::Error;
use crate::domain::revoke::{RevocationSummary, Selector};

/// POST /revoke: `token` (RFC 7009), or, for admin clients, exactly one selector.
// No `Debug`: it carries secrets.
#[derive(ToSchema)]
pub struct RevokeRequest {
    /// An access or refresh token (RFC 7009 §2.1).
    token: Option<String>,
    /// `access_token` or `refresh_token` (RFC 7009 §2.1); a hint only: every kind is tried.
    #[schema(rename = "token_type_hint", value_type = Option<String>)]
    _token_type_hint: (),
    /// Admin: the exact `sub` (a user's id); every session and access token of that subject.
    subject: Option<String>,
    /// Admin: a user by username; as `subject` with that user's id.
    username: Option<String>,
    /// Admin (with HTTP Basic): everything issued to that client. With `client_secret_post`
    /// it is the caller's own id.
    client_id: Option<String>,
    /// Admin: one session.
    session_id: Option<String>,
    /// Admin: a signing key's compromise.
    kid: Option<String>,
    /// With `subject`, `username` or `client_id`: also disable the user or client.
    #[schema(value_type = Option<bool>)]
    disable: Option<String>,
    #[schema(format = Password)]
    client_secret: Option<String>,
}

impl ClientForm for RevokeRequest {
    const CLIENT_ID_SELECTS: bool = true;

    fn from_params(mut params: Params) -> Result<Self, Error> {
        Ok(Self {
            token: params.take("token"),
            _token_type_hint: (),
            subject: params.take("subject"),
            username: params.take("username"),
            client_id: params.take("client_id"),
            session_id: params.take("session_id"),
            kid: params.take("kid"),
            disable: params.take("disable"),
            client_secret: params.take("client_secret"),
        })
    }

    fn client_fields(&self) -> (Option<&str>, Option<&str>) {
        (self.client_id.as_deref(), self.client_secret.as_deref())
    }
}

/// The answer of POST /revoke: `{}` for a token, the summary for an admin selector.
#[derive(Default, Serialize, ToSchema)]
pub struct RevokeAnswer {
    /// `subject`, `username`, `client_id`, `session_id` or `kid`.
    #[serde(skip_serializing_if = "Option::is_none")]
    selector: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    /// Refresh-token families (sessions) revoked; client_credentials tokens and `kid` count none.
    #[serde(skip_serializing_if = "Option::is_none")]
    sessions_revoked: Option<u64>,
    /// Whether the user or client is now disabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    disabled: Option<bool>,
}

impl From<RevocationSummary> for RevokeAnswer {
    fn from(summary: RevocationSummary) -> Self {
        Self {
            selector: Some(summary.selector),
            value: Some(summary.value),
            sessions_revoked: Some(summary.sessions_revoked),
            disabled: Some(summary.disabled),
        }
    }
}

/// RFC 7009 token revocation, and the admin selectors.
#[utoipa::path(
    post, path = "/revoke", tag = "oauth", operation_id = "revoke",
    request_body(content = RevokeRequest, content_type = "application/x-www-form-urlencoded"),
    security((), ("client_secret_basic" = [])),
    responses(
        (status = 200, description = "With `token`: `{}`, also for unknown, invalid or another client's tokens (RFC 7009 §2.2). With a selector: a summary of what was revoked", body = RevokeAnswer),
        ErrorResponses<{ BAD_REQUEST | UNAUTHORIZED | FORBIDDEN | NOT_FOUND | CONFLICT | TOO_LARGE | UNAVAILABLE }>,
    )
)]
pub async fn post(
    State(app): State<AppState>,
    source: SourceAddr,
    request: ClientAuthorization<RevokeRequest>,
) -> Result<Json<RevokeAnswer>, ApiError> {
    let ClientAuthorization { client, form, .. } = &request;
    let source = source.text();
    async {
        let selectors = [
            form.subject.clone().map(Selector::Subject),
            form.username.clone().map(Selector::Username),
            form.session_id.clone().map(Selector::SessionId),
            form.kid.clone().map(Selector::Kid),
        ];
        // `client_id` doubles as client_secret_post's identifier: it selects only when the
        // caller authenticated with Basic.
        let client_selector = if request.basic && form.token.is_none() {
            form.client_id.clone().map(Selector::ClientId)
        } else {
            None
        };
        let mut chosen: Vec<Selector> = selectors
            .into_iter()
            .flatten()
            .chain(client_selector)
            .collect();
        let disable = match form.disable.as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => return Err(Error::invalid_request("disable must be true or false")),
        };
        match (form.token.as_deref(), chosen.len()) {
            (Some(token), 0) => {
                if disable {
                    return Err(Error::invalid_request(
                        "disable applies to subject, username and client_id only",
                    ));
                }
                app.issuer
                    .revoke_token(client, token, source.as_deref())
                    .await?;
                // RFC 7009 §2.2: 200 whether or not there was anything to revoke; the client
                // ignores the body, an empty object here, so every answer is JSON.
                Ok(RevokeAnswer::default())
            }
            (None, 1) => {
                if !client.is_admin {
                    return Err(Error::AccessDenied);
                }
                let selector = chosen.pop().expect("one selector");
                let summary = app
                    .issuer
                    .revoke_selector(&client.client_id, selector, disable, source.as_deref())
                    .await?;
                Ok(summary.into())
            }
            (None, 0) => Err(Error::invalid_request("parameter token is missing")),
            _ => Err(Error::invalid_request(
                "send token or one selector (subject, username, client_id, session_id, kid)",
            )),
        }
    }
    .await
    .map(Json)
    .map_err(|e| request.refuse(e))
}
