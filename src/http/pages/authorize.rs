//! GET/POST /authorize (RFC 6749 §4.1, RFC 7636, RFC 9207) and the forms it shows: POST /sign-in and POST /consent. The client and its redirect URI are checked before anything else and never redirected to when wrong; every later answer to the client is a 303 carrying `state` and `iss`. Uses: domain.

use std::sync::Arc;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};

use super::{Cookie, Flow, Message, Purpose, csrf_token, csrf_valid, page};
use crate::domain::Error;
use crate::domain::authorize::{CodeGrant, is_code_challenge};
use crate::http::AppState;
use crate::http::source::SourceAddr;
use crate::model::{BrowserSession, Client};

/// The parameters of an authorization request, in the order they are carried and bound.
const REQUEST_FIELDS: [&str; 7] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
];

/// The fields of the page forms, besides the request they carry.
const FORM_FIELDS: [&str; 5] = [
    "csrf_token",
    "username",
    "password",
    "decision",
    "shown_scope",
];

/// An authorization request as sent (RFC 6749 §4.1.1, RFC 7636 §4.3), and the fields of the
/// form that continues it. No `Debug`: a sign-in form carries a password.
#[derive(Default)]
pub struct Submitted {
    request: [Option<String>; REQUEST_FIELDS.len()],
    form: [Option<String>; FORM_FIELDS.len()],
    /// The first parameter sent more than once (RFC 6749 §3.1 forbids it).
    repeated: Option<&'static str>,
}

impl Submitted {
    /// Form-encoded parameters (a query string or a form body). An empty value is absent
    /// (RFC 6749 §3.1); unknown parameters are ignored (RFC 6749 §3.1).
    fn parse(encoded: &[u8]) -> Self {
        let mut submitted = Self::default();
        for (name, value) in url::form_urlencoded::parse(encoded) {
            if value.is_empty() {
                continue;
            }
            let slot = if let Some(i) = REQUEST_FIELDS.iter().position(|f| *f == name) {
                (&mut submitted.request[i], REQUEST_FIELDS[i])
            } else if let Some(i) = FORM_FIELDS.iter().position(|f| *f == name) {
                (&mut submitted.form[i], FORM_FIELDS[i])
            } else {
                continue;
            };
            if slot.0.is_some() {
                submitted.repeated.get_or_insert(slot.1);
            }
            *slot.0 = Some(value.into_owned());
        }
        submitted
    }

    fn param(&self, name: &str) -> Option<&str> {
        let i = REQUEST_FIELDS.iter().position(|f| *f == name)?;
        self.request[i].as_deref()
    }

    fn field(&self, name: &str) -> Option<&str> {
        let i = FORM_FIELDS.iter().position(|f| *f == name)?;
        self.form[i].as_deref()
    }

    /// The request's parameters as the hidden fields of the next form.
    fn hidden_fields(&self) -> Vec<(&'static str, String)> {
        REQUEST_FIELDS
            .iter()
            .zip(&self.request)
            .filter_map(|(name, value)| Some((*name, value.clone()?)))
            .collect()
    }

    /// The request, encoded unambiguously: what a form's token is bound to.
    fn binding(&self) -> String {
        let mut encoded = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in REQUEST_FIELDS.iter().zip(&self.request) {
            encoded.append_pair(name, value.as_deref().unwrap_or(""));
        }
        encoded.finish()
    }
}

/// A request whose client and redirect URI are known to be right: from here on, errors go
/// back to the client.
struct Valid {
    client: Arc<Client>,
    back: Back,
    scope: Option<String>,
    code_challenge: String,
}

/// Where answers to the client go: the redirect URI as sent (it matched a registered one),
/// with `state` and `iss` (RFC 9207) on every answer.
struct Back {
    redirect_uri: String,
    state: Option<String>,
    issuer: String,
}

impl Back {
    fn with(&self, pairs: &[(&str, &str)]) -> Response {
        let Ok(mut url) = url::Url::parse(&self.redirect_uri) else {
            // A registered redirect URI always parses; refuse rather than guess.
            return invalid_link();
        };
        {
            let mut query = url.query_pairs_mut();
            for (name, value) in pairs {
                query.append_pair(name, value);
            }
            if let Some(state) = &self.state {
                query.append_pair("state", state);
            }
            query.append_pair("iss", &self.issuer);
        }
        match HeaderValue::from_str(url.as_str()) {
            Ok(location) => (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response(),
            Err(_) => invalid_link(),
        }
    }

    /// An error answer (RFC 6749 §4.1.2.1).
    fn error(&self, code: &str, description: &str) -> Response {
        self.with(&[("error", code), ("error_description", description)])
    }

    /// A domain error met after the client was known: OAuth errors go back to the client,
    /// trouble on our side is a page (the client could do nothing with it).
    fn domain_error(&self, error: Error) -> Response {
        match error {
            Error::InvalidScope => {
                self.error("invalid_scope", "the requested scope is not allowed")
            }
            Error::InvalidRequest(text) => self.error("invalid_request", &text),
            Error::UnauthorizedClient => self.error(
                "unauthorized_client",
                "this client may not use the authorization code grant",
            ),
            Error::AccessDenied => self.error("access_denied", "access was denied"),
            other => trouble(other),
        }
    }
}

/// Our side failed: a page, logged once for an internal fault.
pub(super) fn trouble(error: Error) -> Response {
    match error {
        Error::Busy | Error::TemporarilyUnavailable => {
            Message::unavailable(StatusCode::SERVICE_UNAVAILABLE)
        }
        Error::Internal(source) => {
            tracing::error!(error = %source, "internal error");
            Message::unavailable(StatusCode::INTERNAL_SERVER_ERROR)
        }
        other => {
            tracing::warn!(error = %other, "unexpected error on a page");
            Message::unavailable(StatusCode::INTERNAL_SERVER_ERROR)
        }
    }
}

/// The client or its redirect URI is missing, unknown or wrong: a page, never a redirect (an
/// open redirector otherwise, RFC 6749 §4.1.2.1, RFC 9700 §4.1).
fn invalid_link() -> Response {
    Message::page(
        StatusCode::BAD_REQUEST,
        "This sign-in link is not valid",
        "The application that sent you here is not registered, or asked to send you back to an \
         address it has not registered. Nothing was done; you can close this page.",
    )
}

/// Checks a request: client and redirect URI first, then everything else.
async fn validate(app: &AppState, submitted: &Submitted) -> Result<Valid, Response> {
    let (Some(client_id), Some(redirect_uri)) = (
        submitted.param("client_id"),
        submitted.param("redirect_uri"),
    ) else {
        return Err(invalid_link());
    };
    // A repeated client_id or redirect_uri leaves no one URI to trust.
    if matches!(submitted.repeated, Some("client_id" | "redirect_uri")) {
        return Err(invalid_link());
    }
    let client = match app
        .issuer
        .authorization_client(client_id, redirect_uri)
        .await
    {
        Ok(client) => client,
        Err(error @ (Error::Busy | Error::TemporarilyUnavailable | Error::Internal(_))) => {
            return Err(trouble(error));
        }
        Err(_) => return Err(invalid_link()),
    };
    let back = Back {
        redirect_uri: redirect_uri.to_owned(),
        // A repeated state is refused below, but the last one still goes back.
        state: submitted.param("state").map(str::to_owned),
        issuer: app.issuer.issuer().to_owned(),
    };
    if let Some(name) = submitted.repeated {
        return Err(back.error("invalid_request", &format!("parameter {name} is repeated")));
    }
    match submitted.param("response_type") {
        None => return Err(back.error("invalid_request", "parameter response_type is missing")),
        Some("code") => {}
        Some(_) => {
            return Err(back.error(
                "unsupported_response_type",
                "only response_type=code is supported",
            ));
        }
    }
    // PKCE is required of every client, S256 only (RFC 9700 §2.1.1).
    match submitted.param("code_challenge_method") {
        Some("S256") => {}
        None => {
            return Err(back.error(
                "invalid_request",
                "PKCE is required: send code_challenge with code_challenge_method=S256",
            ));
        }
        Some(_) => {
            return Err(back.error(
                "invalid_request",
                "only code_challenge_method=S256 is supported",
            ));
        }
    }
    let code_challenge = match submitted.param("code_challenge") {
        Some(challenge) if is_code_challenge(challenge) => challenge.to_owned(),
        Some(_) => return Err(back.error("invalid_request", "code_challenge is malformed")),
        None => return Err(back.error("invalid_request", "parameter code_challenge is missing")),
    };
    let scope = submitted.param("scope").map(str::to_owned);
    // What the client may ask for at all; what the user holds is checked once they are known.
    if let Err(error) = crate::domain::token::granted_scope(&client, scope.as_deref()) {
        return Err(back.domain_error(error));
    }
    Ok(Valid {
        client,
        back,
        scope,
        code_challenge,
    })
}

/// The sign-in page.
#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage<'a> {
    client_name: &'a str,
    error: Option<&'static str>,
    username: &'a str,
    csrf_token: String,
    fields: Vec<(&'static str, String)>,
}

/// The consent page.
#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage<'a> {
    client_name: &'a str,
    scopes: Vec<&'a str>,
    csrf_token: String,
    fields: Vec<(&'static str, String)>,
}

fn client_name(client: &Client) -> &str {
    client.name.as_deref().unwrap_or(&client.client_id)
}

fn sign_in_page(
    app: &AppState,
    flow: &str,
    submitted: &Submitted,
    valid: &Valid,
    status: StatusCode,
    error: Option<&'static str>,
) -> Response {
    let binding = submitted.binding();
    page(
        status,
        &SignInPage {
            client_name: client_name(&valid.client),
            error,
            username: submitted.field("username").unwrap_or(""),
            csrf_token: csrf_token(&app.form_key, Purpose::SignIn, flow, &[binding.as_bytes()]),
            fields: submitted.hidden_fields(),
        },
    )
}

/// Whether the user is asked before a code is issued. Always for a client that is not first
/// party. A first-party client skips it when the user has just signed in to it, or when it
/// proves who it is (confidential) or where it lands (https); a public client on a loopback or
/// private-use redirect riding an existing session could be anyone's app (RFC 8252 §8.6).
fn needs_consent(client: &Client, redirect_uri: &str, just_signed_in: bool) -> bool {
    !client.first_party
        || !(just_signed_in || !client.is_public() || redirect_uri.starts_with("https://"))
}

/// Signed in: ask for consent, or issue the code.
async fn signed_in(
    app: &AppState,
    flow: &str,
    submitted: &Submitted,
    valid: Valid,
    session: (&str, &BrowserSession),
    just_signed_in: bool,
) -> Response {
    let scope = match app
        .issuer
        .approvable_scope(&valid.client, session.1.user_id, valid.scope.as_deref())
        .await
    {
        Ok(scope) => scope,
        Err(error) => return valid.back.domain_error(error),
    };
    if !needs_consent(&valid.client, &valid.back.redirect_uri, just_signed_in) {
        return issue(app, valid, session.1, scope).await;
    }
    let binding = submitted.binding();
    let mut fields = submitted.hidden_fields();
    fields.push(("shown_scope", scope.clone()));
    page(
        StatusCode::OK,
        &ConsentPage {
            client_name: client_name(&valid.client),
            scopes: scope.split_whitespace().collect(),
            csrf_token: csrf_token(
                &app.form_key,
                Purpose::Consent,
                flow,
                &[binding.as_bytes(), session.0.as_bytes(), scope.as_bytes()],
            ),
            fields,
        },
    )
}

/// The code, back to the client (RFC 6749 §4.1.2).
async fn issue(app: &AppState, valid: Valid, session: &BrowserSession, scope: String) -> Response {
    let grant = CodeGrant {
        client_id: valid.client.client_id.clone(),
        redirect_uri: valid.back.redirect_uri.clone(),
        code_challenge: valid.code_challenge,
        scope,
        user_id: session.user_id,
        browser_session_id: Some(session.browser_session_id),
    };
    match app.issuer.issue_code(grant).await {
        Ok(code) => valid.back.with(&[("code", &code)]),
        Err(error) => valid.back.domain_error(error),
    }
}

/// The browser session this request rides, if it has a live one.
async fn current_session(
    app: &AppState,
    headers: &HeaderMap,
) -> Result<Option<(String, BrowserSession)>, Response> {
    let Some(cookie) = Cookie::Session.read(app, headers) else {
        return Ok(None);
    };
    match app.issuer.browser_session(&cookie).await {
        Ok(session) => Ok(session.map(|session| (cookie, session))),
        Err(error) => Err(trouble(error)),
    }
}

/// GET /authorize.
pub async fn get(
    State(app): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let submitted = Submitted::parse(query.as_deref().unwrap_or("").as_bytes());
    authorize(&app, &headers, &submitted).await
}

/// POST /authorize: the same request as a form body (RFC 6749 §3.1).
pub async fn post(State(app): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if !is_form(&headers) {
        return Message::page(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "This sign-in link is not valid",
            "The request was not sent as a form. Nothing was done.",
        );
    }
    authorize(&app, &headers, &Submitted::parse(&body)).await
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

async fn authorize(app: &AppState, headers: &HeaderMap, submitted: &Submitted) -> Response {
    let flow = Flow::of(app, headers);
    let response = match validate(app, submitted).await {
        Err(response) => response,
        Ok(valid) => match current_session(app, headers).await {
            Err(response) => response,
            Ok(Some((cookie, session))) => {
                signed_in(
                    app,
                    &flow.value,
                    submitted,
                    valid,
                    (&cookie, &session),
                    false,
                )
                .await
            }
            Ok(None) => sign_in_page(app, &flow.value, submitted, &valid, StatusCode::OK, None),
        },
    };
    flow.attach(app, response)
}

/// A form post from one of our pages, trusted only with a token made for this browser's flow
/// cookie, this request and `bound` (more values the form is tied to), then validated like the
/// request that started it. Returns the fields, the flow cookie and the valid request.
async fn trusted_form(
    app: &AppState,
    headers: &HeaderMap,
    body: &[u8],
    purpose: Purpose,
    bound: impl FnOnce(&Submitted) -> Vec<String>,
) -> Result<(Submitted, String, Valid), Response> {
    if !is_form(headers) {
        return Err(Message::forged());
    }
    let submitted = Submitted::parse(body);
    let mut values = vec![submitted.binding()];
    values.extend(bound(&submitted));
    let parts: Vec<&[u8]> = values.iter().map(String::as_bytes).collect();
    let flow = Cookie::Flow.read(app, headers);
    let token = submitted.field("csrf_token");
    let Some(flow) =
        flow.filter(|flow| csrf_valid(&app.form_key, purpose, Some(flow), &parts, token))
    else {
        return Err(Message::forged());
    };
    let valid = validate(app, &submitted).await?;
    Ok((submitted, flow, valid))
}

/// POST /sign-in: the sign-in form. The password grant's path: the same throttle, the same
/// handling of unknown users and the same audit events.
pub async fn sign_in(
    State(app): State<AppState>,
    SourceAddr(source): SourceAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (submitted, flow, valid) =
        match trusted_form(&app, &headers, &body, Purpose::SignIn, |_| Vec::new()).await {
            Ok(form) => form,
            Err(response) => return response,
        };
    let again =
        |status, message| sign_in_page(&app, &flow, &submitted, &valid, status, Some(message));
    let (Some(username), Some(password)) =
        (submitted.field("username"), submitted.field("password"))
    else {
        return again(
            StatusCode::BAD_REQUEST,
            "Enter your username and your password.",
        );
    };
    let user = match app
        .issuer
        .sign_in(&valid.client, username, password, source)
        .await
    {
        Ok(user) => user,
        // One message for an unknown user and a wrong password.
        Err(Error::InvalidGrant) => {
            return again(
                StatusCode::UNAUTHORIZED,
                "That username and password do not match. Check them and try again.",
            );
        }
        Err(Error::Throttled {
            retry_after_seconds,
        }) => {
            let mut response = again(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many attempts to sign in. Wait a few minutes, then try again.",
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_seconds));
            return response;
        }
        Err(error) => return valid.back.domain_error(error),
    };
    let (cookie, session) = match app.issuer.start_browser_session(user.user_id, source).await {
        Ok(started) => started,
        Err(error) => return trouble(error),
    };
    let cookie = cookie.expose();
    let mut response = signed_in(&app, &flow, &submitted, valid, (cookie, &session), true).await;
    let (name, value) = Cookie::Session.set(&app, cookie);
    response.headers_mut().append(name, value);
    response
}

/// POST /consent: the user's decision (`decision=approve` or `deny`).
pub async fn consent(State(app): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let cookie = Cookie::Session.read(&app, &headers).unwrap_or_default();
    // Bound to the session too: a consent form shown to one user approves nothing for another.
    let bound = |submitted: &Submitted| {
        let shown = submitted.field("shown_scope").unwrap_or("");
        vec![cookie.clone(), shown.to_owned()]
    };
    let (submitted, flow, valid) =
        match trusted_form(&app, &headers, &body, Purpose::Consent, bound).await {
            Ok(form) => form,
            Err(response) => return response,
        };
    let shown_scope = submitted.field("shown_scope").unwrap_or("");
    let session = match app.issuer.browser_session(&cookie).await {
        Ok(Some(session)) => session,
        // Signed out, disabled or expired since the page was shown: sign in again.
        Ok(None) => {
            return sign_in_page(
                &app,
                &flow,
                &submitted,
                &valid,
                StatusCode::OK,
                Some("You were signed out. Sign in again to continue."),
            );
        }
        Err(error) => return trouble(error),
    };
    match submitted.field("decision") {
        Some("approve") => {}
        Some("deny") => {
            return valid
                .back
                .error("access_denied", "the user denied the request");
        }
        _ => {
            return valid
                .back
                .error("invalid_request", "parameter decision is missing");
        }
    }
    // What the user approved ∩ what they hold now ∩ the client's scopes.
    let now = match app
        .issuer
        .approvable_scope(&valid.client, session.user_id, valid.scope.as_deref())
        .await
    {
        Ok(scope) => scope,
        Err(error) => return valid.back.domain_error(error),
    };
    let approved: Vec<&str> = shown_scope.split_whitespace().collect();
    let scope = now
        .split_whitespace()
        .filter(|s| approved.contains(s))
        .collect::<Vec<_>>()
        .join(" ");
    issue(&app, valid, &session, scope).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_parse_with_empty_as_absent_and_repeats_noted() {
        let s = Submitted::parse(b"client_id=c&state=&scope=a+b&unknown=1&csrf_token=t");
        assert_eq!(s.param("client_id"), Some("c"));
        assert_eq!(s.param("state"), None);
        assert_eq!(s.param("scope"), Some("a b"));
        assert_eq!(s.field("csrf_token"), Some("t"));
        assert!(s.repeated.is_none());
        let s = Submitted::parse(b"state=1&client_id=c&state=2");
        assert_eq!(s.repeated, Some("state"));
    }

    #[test]
    fn the_binding_tells_requests_apart() {
        let one = Submitted::parse(b"client_id=c&state=a%26scope%3Db");
        let two = Submitted::parse(b"client_id=c&state=a&scope=b");
        assert_ne!(one.binding(), two.binding());
        // Form fields are not part of the request.
        let three = Submitted::parse(b"client_id=c&state=a&scope=b&username=x");
        assert_eq!(two.binding(), three.binding());
    }
}
