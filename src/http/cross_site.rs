//! Refuses state-changing requests that a browser marks cross-site on the admin API, POST /revoke and the browser pages' forms: a browser replays the Basic credentials it cached for `/admin/`, and the session cookie of the pages, to any site that makes it send a request there (CONTRACT: Admin API). Uses: axum.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};

const SEC_FETCH_SITE: &str = "sec-fetch-site";

/// The middleware: a cross-site request to a guarded route gets 403 `access_denied` before any
/// extractor runs (so before the credentials are even checked).
pub async fn refuse(State(app): State<AppState>, request: Request, next: Next) -> Response {
    if guarded(request.method(), request.uri().path())
        && cross_site(request.headers(), &app.issuer_origin)
    {
        tracing::warn!(path = %request.uri().path(), "cross-site request refused");
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "access_denied",
            "cross-site requests to this endpoint are refused",
        )
        .into_response();
    }
    next.run(request).await
}

/// State-changing methods on `/admin/*`, `/revoke` and the browser pages' forms (`/sign-in`,
/// `/consent`, `/logout`). Not `/authorize`: a client may start a flow with a cross-site form
/// post (RFC 6749 §3.1), and that request changes nothing by itself.
fn guarded(method: &Method, path: &str) -> bool {
    let changes_state = [Method::POST, Method::PUT, Method::PATCH, Method::DELETE].contains(method);
    changes_state
        && (["/revoke", "/admin", "/sign-in", "/consent", "/logout"].contains(&path)
            || path.starts_with("/admin/"))
}

/// Fetch metadata says `cross-site`, or an `Origin` other than the issuer's is named. Requests
/// without either header (curl, the CLI, server-side clients) pass: only browsers send them,
/// and a browser always sends `Origin` on a cross-origin POST.
///
/// One exception: `Origin: null` with `Sec-Fetch-Site: same-origin` is a form on our own pages,
/// whose `Referrer-Policy: no-referrer` makes browsers send `null` (Fetch: "serializing a
/// request origin"); a page elsewhere cannot make a browser claim `same-origin`.
fn cross_site(headers: &HeaderMap, issuer_origin: &url::Origin) -> bool {
    let fetch_site = |value: &[u8]| {
        headers
            .get(SEC_FETCH_SITE)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(value))
    };
    let own_page_without_referrer = fetch_site(b"same-origin")
        && headers
            .get(header::ORIGIN)
            .is_some_and(|origin| origin.as_bytes() == b"null");
    if own_page_without_referrer {
        return false;
    }
    let fetch_site = fetch_site(b"cross-site");
    let foreign_origin = headers.get(header::ORIGIN).is_some_and(|origin| {
        // An opaque origin (`null`, a sandboxed frame) or an unreadable one is not ours.
        origin
            .to_str()
            .ok()
            .and_then(|o| url::Url::parse(o).ok())
            .is_none_or(|o| o.origin() != *issuer_origin || !o.origin().is_tuple())
    });
    fetch_site || foreign_origin
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn origin(url: &str) -> url::Origin {
        url::Url::parse(url).unwrap().origin()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn only_state_changing_methods_on_admin_and_revoke_are_guarded() {
        for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert!(guarded(&method, "/revoke"));
            assert!(guarded(&method, "/admin/clients"));
            assert!(guarded(&method, "/admin/keys/rotate"));
            assert!(guarded(&method, "/sign-in"));
            assert!(guarded(&method, "/consent"));
            assert!(guarded(&method, "/logout"));
        }
        for method in [Method::GET, Method::HEAD, Method::OPTIONS] {
            assert!(!guarded(&method, "/admin/clients"));
            assert!(!guarded(&method, "/revoke"));
        }
        for path in [
            "/token",
            "/refresh",
            "/introspect",
            "/administrator",
            "/revoked",
            "/authorize",
        ] {
            assert!(!guarded(&Method::POST, path), "{path}");
        }
    }

    #[test]
    fn cross_site_is_fetch_metadata_or_a_foreign_origin() {
        let ours = origin("https://auth.example.com");
        for refused in [
            headers(&[("sec-fetch-site", "cross-site")]),
            headers(&[("sec-fetch-site", "Cross-Site")]),
            headers(&[("origin", "https://evil.example")]),
            headers(&[("origin", "http://auth.example.com")]),
            headers(&[("origin", "https://auth.example.com:8443")]),
            headers(&[("origin", "https://sub.auth.example.com")]),
            headers(&[("origin", "null")]),
            headers(&[("sec-fetch-site", "same-site"), ("origin", "null")]),
            headers(&[("sec-fetch-site", "cross-site"), ("origin", "null")]),
            headers(&[("origin", "not a url")]),
            headers(&[
                ("sec-fetch-site", "cross-site"),
                ("origin", "https://auth.example.com"),
            ]),
            headers(&[
                ("sec-fetch-site", "same-site"),
                ("origin", "https://evil.example"),
            ]),
        ] {
            assert!(cross_site(&refused, &ours), "{refused:?}");
        }
        for passed in [
            HeaderMap::new(),
            headers(&[("sec-fetch-site", "same-origin")]),
            headers(&[("sec-fetch-site", "same-site")]),
            headers(&[("sec-fetch-site", "none")]),
            headers(&[("origin", "https://auth.example.com")]),
            // The default port is the same origin.
            headers(&[("origin", "https://auth.example.com:443")]),
            headers(&[
                ("sec-fetch-site", "same-origin"),
                ("origin", "https://auth.example.com"),
            ]),
            // A form on our pages (Referrer-Policy: no-referrer).
            headers(&[("sec-fetch-site", "same-origin"), ("origin", "null")]),
        ] {
            assert!(!cross_site(&passed, &ours), "{passed:?}");
        }
    }
}
