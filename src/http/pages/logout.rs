//! GET /logout shows a sign-out button; POST /logout (its form, with its token) ends this browser's session. Uses: domain.

use askama::Template;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::HeaderMap;
use axum::response::Response;

use super::{Cookie, Flow, Message, Purpose, csrf_token, csrf_valid, page};
use crate::http::AppState;

#[derive(Template)]
#[template(path = "logout.html")]
struct LogoutPage {
    signed_in: bool,
    csrf_token: String,
}

/// GET /logout: the sign-out form, for the browser session this browser holds.
pub async fn get(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let flow = Flow::of(&app, &headers);
    let cookie = Cookie::Session.read(&app, &headers).unwrap_or_default();
    let signed_in =
        !cookie.is_empty() && matches!(app.issuer.browser_session(&cookie).await, Ok(Some(_)));
    let csrf_token = csrf_token(
        &app.form_key,
        Purpose::Logout,
        &flow.value,
        &[cookie.as_bytes()],
    );
    let response = page(
        StatusCode::OK,
        &LogoutPage {
            signed_in,
            csrf_token,
        },
    );
    flow.attach(&app, response)
}

/// POST /logout: ends the browser session and removes its cookie. A form without this
/// browser's token changes nothing (a forged post would sign the user out).
pub async fn post(State(app): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let token = url::form_urlencoded::parse(&body)
        .find(|(name, _)| name == "csrf_token")
        .map(|(_, value)| value.into_owned());
    let flow = Cookie::Flow.read(&app, &headers);
    let cookie = Cookie::Session.read(&app, &headers).unwrap_or_default();
    if !csrf_valid(
        &app.form_key,
        Purpose::Logout,
        flow.as_deref(),
        &[cookie.as_bytes()],
        token.as_deref(),
    ) {
        return Message::forged();
    }
    if !cookie.is_empty()
        && let Err(error) = app.issuer.end_browser_session(&cookie).await
    {
        return super::authorize::trouble(error);
    }
    let mut response = page(
        StatusCode::OK,
        &LogoutPage {
            signed_in: false,
            csrf_token: String::new(),
        },
    );
    let (name, value) = Cookie::Session.clear(&app);
    response.headers_mut().append(name, value);
    response
}
