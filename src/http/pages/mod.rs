//! The browser pages (CONTRACT: Authorization code with PKCE): sign-in, consent, sign-out and their error pages, server-rendered from templates compiled into the binary, with no script. Their answers are HTML, never the JSON error shape, and they are left out of the OpenAPI document. Uses: domain, crypto, askama.
//!
//! # Layout
//! `authorize.rs` is GET/POST /authorize and the forms it shows (POST /sign-in, POST /consent);
//! `logout.rs` is GET/POST /logout. Shared here: the page headers, the cookies, and the
//! anti-forgery tokens of the forms.
//!
//! # Forgery
//! The first page of a flow sets a random flow cookie (HttpOnly, SameSite=Lax). Each form carries
//! a hidden `csrf_token`: an HMAC, under a key derived from the master key, of the form's
//! purpose, that cookie and the authorization request the form continues (for consent, also the
//! browser session). A form made for another browser, another request or another session is
//! refused, and so is a form without one (login CSRF included, RFC 6749 §10.12). Cross-site
//! posts are refused before any of that by the guard in `cross_site.rs`.

use askama::Template;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::{HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::crypto::form_tokens::FormKey;

pub mod authorize;
pub mod logout;

/// The routes of the pages, each answer with [`page_headers`].
pub fn router() -> axum::Router<AppState> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/authorize", get(authorize::get).post(authorize::post))
        .route("/sign-in", post(authorize::sign_in))
        .route("/consent", post(authorize::consent))
        .route("/logout", get(logout::get).post(logout::post))
        .layer(axum::middleware::map_response(page_headers))
        .route("/assets/pages.css", get(stylesheet))
}

/// The stylesheet of every page, compiled in.
const STYLESHEET: &str = include_str!("../../../assets/pages.css");

/// No framing (RFC 9700 §4.16), no script, styles only from here. No `form-action`: Chrome and
/// Safari apply it to the redirect that follows a form post and would block the way back to
/// the client (kanidm#3354).
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     base-uri 'none'; frame-ancestors 'none'";

/// The headers every page and every redirect of the browser flow carries: nothing framed,
/// cached, sniffed, or leaked in a `Referer` (the redirect carries the code).
pub async fn page_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
    ] {
        headers.insert(name, value);
    }
    response
}

/// GET /assets/pages.css.
pub async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        STYLESHEET,
    )
        .into_response()
}

/// A rendered page with its status.
pub fn page(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html,
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "a page failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "internal error",
            )
                .into_response()
        }
    }
}

/// A page with a title and one sentence: errors, and "you are signed out".
#[derive(Template)]
#[template(path = "message.html")]
pub struct Message {
    pub title: &'static str,
    pub message: &'static str,
}

impl Message {
    pub fn page(status: StatusCode, title: &'static str, message: &'static str) -> Response {
        page(status, &Self { title, message })
    }

    /// A form that could not be trusted (no anti-forgery token, or one made for another browser
    /// or request): nothing was done.
    pub fn forged() -> Response {
        Self::page(
            StatusCode::FORBIDDEN,
            "This form has expired",
            "Nothing was changed. Go back to the application and start signing in again.",
        )
    }

    /// The server could not do it now (the database, the password queue, an internal fault).
    pub fn unavailable(status: StatusCode) -> Response {
        Self::page(
            status,
            "Something went wrong",
            "Tessera could not finish this just now. Please try again in a moment.",
        )
    }
}

/// The two cookies of the pages. On an https issuer they are `Secure` and `__Host-` prefixed
/// (bound to this exact host, path `/`, so a sibling subdomain cannot plant one); on plain
/// http (development, loopback) browsers refuse both, so they go without.
#[derive(Debug, Clone, Copy)]
pub enum Cookie {
    /// The browser session: who is signed in here.
    Session,
    /// The flow: binds each form to the browser that asked for it.
    Flow,
}

impl Cookie {
    fn name(self, secure: bool) -> &'static str {
        match (self, secure) {
            (Self::Session, true) => "__Host-tessera_session",
            (Self::Session, false) => "tessera_session",
            (Self::Flow, true) => "__Host-tessera_flow",
            (Self::Flow, false) => "tessera_flow",
        }
    }

    /// This cookie's value in the request, if it sent one.
    pub fn read(self, app: &AppState, headers: &HeaderMap) -> Option<String> {
        let name = self.name(app.secure_cookies());
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(cookie::Cookie::split_parse)
            .filter_map(Result::ok)
            .find(|c| c.name() == name && !c.value().is_empty())
            .map(|c| c.value().to_owned())
    }

    /// `Set-Cookie` for `value`: HttpOnly, SameSite=Lax (sent on the top-level navigation back
    /// from a client, never on a cross-site post), for the browser's session only.
    pub fn set(self, app: &AppState, value: &str) -> (HeaderName, HeaderValue) {
        let secure = app.secure_cookies();
        let cookie = cookie::Cookie::build((self.name(secure), value))
            .path("/")
            .http_only(true)
            .secure(secure)
            .same_site(cookie::SameSite::Lax)
            .build();
        (
            header::SET_COOKIE,
            HeaderValue::from_str(&cookie.to_string()).expect("cookie values are base64url"),
        )
    }

    /// `Set-Cookie` that removes it.
    pub fn clear(self, app: &AppState) -> (HeaderName, HeaderValue) {
        let secure = app.secure_cookies();
        let mut cookie = cookie::Cookie::build((self.name(secure), ""))
            .path("/")
            .http_only(true)
            .secure(secure)
            .same_site(cookie::SameSite::Lax)
            .build();
        cookie.make_removal();
        (
            header::SET_COOKIE,
            HeaderValue::from_str(&cookie.to_string()).expect("a removal cookie is plain"),
        )
    }
}

/// The flow cookie this request continues, or a fresh one to set with the answer.
pub struct Flow {
    pub value: String,
    pub fresh: bool,
}

impl Flow {
    pub fn of(app: &AppState, headers: &HeaderMap) -> Self {
        match Cookie::Flow.read(app, headers) {
            // Only a value of our own shape is kept; anything else is replaced.
            Some(value) if value.len() == 43 && value.bytes().all(is_base64url) => Self {
                value,
                fresh: false,
            },
            _ => Self {
                value: crate::crypto::keys::base64url(&crate::crypto::random_bytes::<32>()),
                fresh: true,
            },
        }
    }

    /// Sets the cookie on `response` when it is new.
    pub fn attach(&self, app: &AppState, mut response: Response) -> Response {
        if self.fresh {
            let (name, value) = Cookie::Flow.set(app, &self.value);
            response.headers_mut().append(name, value);
        }
        response
    }
}

fn is_base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// What a form is for: part of its token, so a sign-in token is no consent token.
#[derive(Debug, Clone, Copy)]
pub enum Purpose {
    SignIn,
    Consent,
    Logout,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Self::SignIn => b"sign-in",
            Self::Consent => b"consent",
            Self::Logout => b"logout",
        }
    }
}

/// The anti-forgery token of a form for `purpose`, bound to the flow cookie and to `bound`
/// (the request the form continues, the session it acts for).
pub fn csrf_token(key: &FormKey, purpose: Purpose, flow: &str, bound: &[&[u8]]) -> String {
    key.tag(&token_parts(purpose, flow, bound))
}

/// Whether a submitted form's token is the one this browser was given for this purpose and
/// these values. A missing flow cookie or token fails.
pub fn csrf_valid(
    key: &FormKey,
    purpose: Purpose,
    flow: Option<&str>,
    bound: &[&[u8]],
    token: Option<&str>,
) -> bool {
    match (flow, token) {
        (Some(flow), Some(token)) => key.verify(&token_parts(purpose, flow, bound), token),
        _ => false,
    }
}

fn token_parts<'a>(purpose: Purpose, flow: &'a str, bound: &[&'a [u8]]) -> Vec<&'a [u8]> {
    let mut parts = vec![purpose.label(), flow.as_bytes()];
    parts.extend_from_slice(bound);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_holds_only_for_its_purpose_flow_and_request() {
        let key = FormKey::random();
        let token = csrf_token(&key, Purpose::SignIn, "flow-a", &[b"request-1"]);
        let check =
            |purpose, flow, bound: &[u8], token| csrf_valid(&key, purpose, flow, &[bound], token);
        assert!(check(
            Purpose::SignIn,
            Some("flow-a"),
            b"request-1",
            Some(&token)
        ));
        assert!(!check(
            Purpose::Consent,
            Some("flow-a"),
            b"request-1",
            Some(&token)
        ));
        assert!(!check(
            Purpose::SignIn,
            Some("flow-b"),
            b"request-1",
            Some(&token)
        ));
        assert!(!check(
            Purpose::SignIn,
            Some("flow-a"),
            b"request-2",
            Some(&token)
        ));
        assert!(!check(Purpose::SignIn, None, b"request-1", Some(&token)));
        assert!(!check(Purpose::SignIn, Some("flow-a"), b"request-1", None));
    }

    #[test]
    fn pages_are_escaped_html() {
        let html = Message {
            title: "<script>",
            message: "a & b",
        }
        .render()
        .unwrap();
        assert!(html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"));
        assert!(!html.contains("<script>"));
    }
}
