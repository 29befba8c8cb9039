//! The authorization code flow with PKCE through the pages (CONTRACT: Authorization code with
//! PKCE): the `oauth2` crate as the client, [`Browser`] as the user's browser.

use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse, TokenUrl,
};
use serde_json::json;

use crate::browser::{Browser, Page};
use crate::helpers::{Backend, TestApp, assert_error, jwt_claims};

const PASSWORD: &str = "dana's long password";
const APP: &str = "https://app.example.com/callback";
const LOOPBACK: &str = "http://127.0.0.1/callback";

type Client = BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// A registered client and what the oauth2 crate needs to drive it.
struct Registered {
    id: String,
    secret: Option<String>,
}

impl Registered {
    fn oauth2(&self, app: &TestApp, redirect_uri: &str) -> Client {
        let client = BasicClient::new(ClientId::new(self.id.clone()))
            .set_auth_uri(AuthUrl::new(format!("{}/authorize", app.url)).unwrap())
            .set_token_uri(TokenUrl::new(format!("{}/token", app.url)).unwrap())
            .set_redirect_uri(RedirectUrl::new(redirect_uri.to_owned()).unwrap());
        match &self.secret {
            Some(secret) => client.set_client_secret(ClientSecret::new(secret.clone())),
            None => client,
        }
    }
}

async fn register(app: &TestApp, public: bool, first_party: bool, redirect: &str) -> Registered {
    let (id, secret) = app
        .create_client(json!({
            "name": "Photo Printer",
            "grant_types": ["authorization_code", "refresh_token"],
            "scopes": ["read", "write"],
            "audiences": ["https://api.example.com"],
            "public": public,
            "first_party": first_party,
            "redirect_uris": [redirect],
        }))
        .await;
    Registered { id, secret }
}

/// An app with dana (password [`PASSWORD`]) and a code client registered for [`APP`] (public or
/// confidential, first party or not), as the oauth2 crate drives it: the app, dana's id and the
/// client.
async fn app_with_dana(
    backend: Backend,
    public: bool,
    first_party: bool,
) -> (TestApp, String, Client) {
    let app = TestApp::spawn(backend).await;
    let dana = app.create_user("dana", PASSWORD).await;
    let client = register(&app, public, first_party, APP)
        .await
        .oauth2(&app, APP);
    (app, dana, client)
}

fn http() -> oauth2::reqwest::Client {
    oauth2::reqwest::ClientBuilder::new()
        .redirect(oauth2::reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// One authorization request made by the client: its URL, state and verifier.
struct Request {
    url: String,
    state: String,
    verifier: PkceCodeVerifier,
}

fn request(client: &Client, scope: &str) -> Request {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state) = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new(scope.into()))
        .set_pkce_challenge(challenge)
        .url();
    Request {
        url: url.to_string(),
        state: state.secret().clone(),
        verifier,
    }
}

fn sign_in_form(page: &Page) -> crate::browser::Form {
    assert!(matches!(page.status, 200 | 401), "{}", page.html);
    let form = page.form();
    assert_eq!(form.action, "/sign-in");
    assert_eq!(form.visible(), ["username", "password"]);
    form
}

async fn sign_in(browser: &mut Browser, page: &Page, username: &str, password: &str) -> Page {
    let form = sign_in_form(page);
    browser
        .submit(&form, &[("username", username), ("password", password)])
        .await
}

async fn decide(browser: &mut Browser, page: &Page, decision: &str) -> Page {
    assert_eq!(page.status, 200, "{}", page.html);
    let form = page
        .forms()
        .into_iter()
        .find(|f| f.action == "/consent")
        .expect("a consent form");
    assert!(
        form.buttons
            .contains(&("decision".to_owned(), decision.to_owned()))
    );
    browser.submit(&form, &[("decision", decision)]).await
}

/// The code of a successful answer, after checking `state` and `iss` (RFC 9207).
fn code(app: &TestApp, page: &Page, request: &Request) -> String {
    let params = page.redirect_params();
    assert_eq!(params.get("state"), Some(&request.state), "{params:?}");
    assert_eq!(params.get("iss"), Some(&app.url), "{params:?}");
    let code = params.get("code").expect("a code").clone();
    assert!(code.starts_with("tsc_"), "{code}");
    code
}

async fn exchange(
    client: &Client,
    code: &str,
    verifier: PkceCodeVerifier,
) -> Result<oauth2::basic::BasicTokenResponse, String> {
    client
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .set_pkce_verifier(verifier)
        .request_async(&http())
        .await
        .map_err(|e| format!("{e:?}"))
}

fn assert_page_headers(page: &Page) {
    let csp = page.header("content-security-policy");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("form-action"), "{csp}");
    assert_eq!(page.header("x-frame-options"), "DENY");
    assert_eq!(page.header("referrer-policy"), "no-referrer");
    assert_eq!(page.header("cache-control"), "no-store");
    assert_eq!(page.header("x-content-type-options"), "nosniff");
}

async fn the_oauth2_crate_signs_in_through_the_pages(backend: Backend) {
    let (app, sub, client) = app_with_dana(backend, false, false).await;
    let req = request(&client, "read");
    let mut browser = Browser::new(&app.url);

    let page = browser.get(&req.url).await;
    assert_page_headers(&page);
    assert!(page.header("content-type").starts_with("text/html"));
    assert!(page.html.contains("Photo Printer"), "{}", page.html);
    let flow_cookie = browser
        .cookies
        .get("tessera_flow")
        .expect("a flow cookie")
        .clone();
    let consent = sign_in(&mut browser, &page, "dana", PASSWORD).await;
    assert_page_headers(&consent);
    assert!(browser.cookies.contains_key("tessera_session"));
    assert_eq!(browser.cookies["tessera_flow"], flow_cookie);
    // The consent page names the client and the scopes.
    assert!(consent.html.contains("Photo Printer"));
    assert!(
        consent.html.contains("<code>read</code>"),
        "{}",
        consent.html
    );
    assert!(!consent.html.contains("<code>write</code>"));
    let answer = decide(&mut browser, &consent, "approve").await;
    assert_page_headers(&answer);
    let code = code(&app, &answer, &req);

    let tokens = exchange(&client, &code, req.verifier).await.unwrap();
    let claims = jwt_claims(tokens.access_token().secret());
    assert_eq!(claims["sub"], sub);
    assert_eq!(claims["scope"], "read");
    assert!(claims["sid"].is_string(), "{claims}");
    assert!(tokens.refresh_token().is_some());

    // The code is used up (the exchange's own rules are tested with /token).
    let again = exchange(&client, &code, PkceCodeVerifier::new("x".repeat(43))).await;
    assert!(again.unwrap_err().contains("invalid_grant"));
}

async fn a_wrong_client_or_redirect_uri_gets_a_page_never_a_redirect(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let registered = register(&app, true, false, LOOPBACK).await;
    let good = request(
        &registered.oauth2(&app, "http://127.0.0.1:8123/callback"),
        "read",
    );
    let mut browser = Browser::new(&app.url);
    // The loopback rule: any port is the registered URI (RFC 8252 §7.3)...
    let page = browser.get(&good.url).await;
    sign_in_form(&page);

    let with = |from: &str, to: &str| good.url.replace(from, to);
    let encoded =
        |uri: &str| url::form_urlencoded::byte_serialize(uri.as_bytes()).collect::<String>();
    let loopback = encoded("http://127.0.0.1:8123/callback");
    for url in [
        // ...but not another path or host.
        with(&loopback, &encoded("http://127.0.0.1:8123/other")),
        with(&loopback, &encoded("http://localhost:8123/callback")),
        with(&loopback, &encoded("https://evil.example/callback")),
        with(&format!("client_id={}", registered.id), "client_id=nobody"),
        with(&format!("&redirect_uri={loopback}"), ""),
        with(&format!("client_id={}", registered.id), ""),
        format!(
            "{}&redirect_uri={}",
            good.url,
            encoded("https://evil.example/")
        ),
        format!("{}&redirect_uri={loopback}", good.url),
        format!("{}/authorize", app.url),
    ] {
        let page = browser.get(&url).await;
        assert_eq!(page.status, 400, "{url}");
        assert!(page.header("location").is_empty(), "{url}");
        assert!(
            page.header("content-type").starts_with("text/html"),
            "{url}"
        );
        assert!(page.html.contains("not valid"), "{url}");
        assert_page_headers(&page);
    }
}

async fn other_errors_go_back_with_state_and_iss(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let registered = register(&app, true, false, APP).await;
    let client = registered.oauth2(&app, APP);
    let req = request(&client, "read");
    let mut browser = Browser::new(&app.url);
    let cases = [
        (
            req.url.replace("response_type=code", "response_type=token"),
            "unsupported_response_type",
        ),
        (req.url.replace("response_type=code", ""), "invalid_request"),
        (
            req.url.replace("&code_challenge_method=S256", ""),
            "invalid_request",
        ),
        (
            req.url
                .replace("code_challenge_method=S256", "code_challenge_method=plain"),
            "invalid_request",
        ),
        (
            req.url
                .split('&')
                .filter(|p| !p.starts_with("code_challenge="))
                .collect::<Vec<_>>()
                .join("&"),
            "invalid_request",
        ),
        (
            req.url.replace("scope=read", "scope=admin"),
            "invalid_scope",
        ),
        (format!("{}&state=again", req.url), "invalid_request"),
    ];
    for (url, error) in cases {
        let page = browser.get(&url).await;
        assert_page_headers(&page);
        let params = page.redirect_params();
        assert!(page.header("location").starts_with(APP), "{url}");
        assert_eq!(
            params.get("error").map(String::as_str),
            Some(error),
            "{url}"
        );
        assert_eq!(params.get("iss"), Some(&app.url), "{url}");
        if !url.ends_with("&state=again") {
            assert_eq!(params.get("state"), Some(&req.state), "{url}");
        }
        assert!(!params.contains_key("code"));
    }
    // The same request as a form post.
    let query = url::Url::parse(&req.url)
        .unwrap()
        .query()
        .unwrap()
        .to_owned();
    let mut pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    pairs.retain(|(name, _)| name != "code_challenge_method");
    let page = browser.post("/authorize", &pairs).await;
    assert_eq!(page.redirect_params()["error"], "invalid_request");
    pairs.push(("code_challenge_method".into(), "S256".into()));
    sign_in_form(&browser.post("/authorize", &pairs).await);
}

async fn forms_without_this_browsers_token_change_nothing(backend: Backend) {
    let (app, _, client) = app_with_dana(backend, false, true).await;
    let mut browser = Browser::new(&app.url);
    let first = request(&client, "read");
    let form = sign_in_form(&browser.get(&first.url).await);
    let second = request(&client, "read");
    let other = sign_in_form(&browser.get(&second.url).await);
    let filled = [("username", "dana"), ("password", PASSWORD)];

    let mut refused = Vec::new();
    // No token.
    let mut values = form.values(&filled);
    values.retain(|(name, _)| name != "csrf_token");
    refused.push(values);
    // The token of another request of this browser.
    let mut values = form.values(&filled);
    for (name, value) in &mut values {
        if name == "csrf_token" {
            *value = other.value("csrf_token").unwrap().to_owned();
        }
    }
    refused.push(values);
    // The request changed under the token.
    refused.push(form.values(&[
        ("username", "dana"),
        ("password", PASSWORD),
        ("scope", "write"),
    ]));
    for values in refused {
        let page = browser.post("/sign-in", &values).await;
        assert_eq!(page.status, 403, "{}", page.html);
        assert!(page.header("content-type").starts_with("text/html"));
        assert!(!browser.cookies.contains_key("tessera_session"));
    }
    // Another browser (another flow cookie) with this browser's form: login CSRF.
    let mut attacker = Browser::new(&app.url);
    attacker.get(&first.url).await;
    let page = attacker.submit(&form, &filled).await;
    assert_eq!(page.status, 403);
    assert!(!attacker.cookies.contains_key("tessera_session"));
    // A browser without any flow cookie.
    let mut bare = Browser::new(&app.url);
    assert_eq!(bare.submit(&form, &filled).await.status, 403);
    // A cross-site post is refused before anything is read.
    let response = app
        .request(reqwest::Method::POST, "/sign-in")
        .header("origin", "https://evil.example")
        .header(
            "cookie",
            format!("tessera_flow={}", browser.cookies["tessera_flow"]),
        )
        .form(&form.values(&filled))
        .send()
        .await
        .unwrap();
    assert_error(response, 403, "access_denied").await;
    // The real form still works: the refusals used nothing up.
    let page = browser.submit(&form, &filled).await;
    code(&app, &page, &first);
}

async fn a_wrong_password_and_an_unknown_user_read_the_same(backend: Backend) {
    let (app, _, client) = app_with_dana(backend, true, true).await;
    let req = request(&client, "read");
    let mut browser = Browser::new(&app.url);
    let page = browser.get(&req.url).await;
    let wrong = sign_in(&mut browser, &page, "dana", "not the password").await;
    let unknown = sign_in(&mut browser, &page, "nobody", "not the password").await;
    assert_eq!(wrong.status, 401);
    assert_eq!(unknown.status, 401);
    let message = |page: &Page| {
        let at = page.html.find("role=\"alert\"").expect("an error message");
        page.html[at..at + 120].to_owned()
    };
    assert_eq!(message(&wrong), message(&unknown));
    assert!(message(&wrong).contains("do not match"));
    assert!(!browser.cookies.contains_key("tessera_session"));
    // The username typed is kept, the password is not.
    let form = sign_in_form(&unknown);
    assert!(
        unknown.html.contains("value=\"nobody\""),
        "{}",
        unknown.html
    );
    assert_eq!(form.value("username"), Some("nobody"));
    assert_eq!(form.value("password"), Some(""));
    let page = sign_in(&mut browser, &wrong, "dana", PASSWORD).await;
    code(&app, &page, &req);
}

async fn denied_consent_is_access_denied(backend: Backend) {
    let (app, _, client) = app_with_dana(backend, true, false).await;
    // A state with characters HTML escapes goes through the hidden fields unchanged.
    let mut req = request(&client, "read write");
    req.url = req.url.replace(
        &format!("state={}", req.state),
        "state=%22%3E%3Cb%3E%26amp%3B%27",
    );
    req.state = "\"><b>&amp;'".into();
    let mut browser = Browser::new(&app.url);
    let page = browser.get(&req.url).await;
    let consent = sign_in(&mut browser, &page, "dana", PASSWORD).await;
    assert!(!consent.html.contains("<b>"));
    let answer = decide(&mut browser, &consent, "deny").await;
    let params = answer.redirect_params();
    assert_eq!(params["error"], "access_denied");
    assert_eq!(params["state"], req.state);
    assert_eq!(params["iss"], app.url);
    assert!(!params.contains_key("code"));
}

async fn a_browser_session_skips_sign_in_until_the_user_is_disabled(backend: Backend) {
    let (app, user, client) = app_with_dana(backend, false, true).await;
    let mut browser = Browser::new(&app.url);
    let first = request(&client, "read");
    let page = browser.get(&first.url).await;
    // First party and just signed in: no consent.
    let answer = sign_in(&mut browser, &page, "dana", PASSWORD).await;
    let code_one = code(&app, &answer, &first);
    // The next request rides the session: no sign-in page, no consent (confidential).
    let second = request(&client, "read");
    let answer = browser.get(&second.url).await;
    let code_two = code(&app, &answer, &second);
    assert_ne!(code_one, code_two);
    exchange(&client, &code_two, second.verifier).await.unwrap();

    let response = app
        .admin(reqwest::Method::PATCH, &format!("/admin/users/{user}"))
        .json(&json!({ "disabled": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let third = request(&client, "read");
    sign_in_form(&browser.get(&third.url).await);
}

async fn logout_ends_the_browser_session(backend: Backend) {
    let (app, _, client) = app_with_dana(backend, false, true).await;
    let mut browser = Browser::new(&app.url);
    let req = request(&client, "read");
    let page = browser.get(&req.url).await;
    code(
        &app,
        &sign_in(&mut browser, &page, "dana", PASSWORD).await,
        &req,
    );

    let page = browser.get(&format!("{}/logout", app.url)).await;
    assert_page_headers(&page);
    let form = page.form();
    assert_eq!(form.action, "/logout");
    // Without its token, or from another site, the form signs no one out.
    let page = browser.post("/logout", &[]).await;
    assert_eq!(page.status, 403);
    let response = app
        .request(reqwest::Method::POST, "/logout")
        .header("origin", "https://evil.example")
        .form(&form.values(&[]))
        .send()
        .await
        .unwrap();
    assert_error(response, 403, "access_denied").await;
    let req = request(&client, "read");
    code(&app, &browser.get(&req.url).await, &req);

    let session = browser.cookies["tessera_session"].clone();
    let page = browser.submit(&form, &[]).await;
    assert_eq!(page.status, 200);
    assert!(page.html.contains("signed out"));
    assert!(!browser.cookies.contains_key("tessera_session"));
    let req = request(&client, "read");
    sign_in_form(&browser.get(&req.url).await);
    // The old cookie value is dead on the server, not only removed from the browser.
    browser.cookies.insert("tessera_session".into(), session);
    sign_in_form(&browser.get(&req.url).await);
}

async fn a_public_loopback_client_riding_a_session_is_asked(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user("dana", PASSWORD).await;
    let loopback = register(&app, true, true, LOOPBACK).await;
    let https = register(&app, true, true, APP).await;
    let loopback_client = loopback.oauth2(&app, "http://127.0.0.1:4567/callback");
    let https_client = https.oauth2(&app, APP);
    let mut browser = Browser::new(&app.url);

    // Just signed in: no consent, even for the public loopback client.
    let req = request(&loopback_client, "read");
    let page = browser.get(&req.url).await;
    let answer = sign_in(&mut browser, &page, "dana", PASSWORD).await;
    let code_one = code(&app, &answer, &req);
    assert!(
        answer
            .header("location")
            .starts_with("http://127.0.0.1:4567/callback?")
    );
    exchange(&loopback_client, &code_one, req.verifier)
        .await
        .unwrap();

    // Riding the session: the loopback client could be any local program, so the user is asked.
    let req = request(&loopback_client, "read");
    let consent = browser.get(&req.url).await;
    assert_eq!(consent.status, 200);
    let answer = decide(&mut browser, &consent, "approve").await;
    code(&app, &answer, &req);

    // A public client on an https redirect is not asked.
    let req = request(&https_client, "read");
    code(&app, &browser.get(&req.url).await, &req);
}

crate::both_backends!(
    the_oauth2_crate_signs_in_through_the_pages,
    a_wrong_client_or_redirect_uri_gets_a_page_never_a_redirect,
    other_errors_go_back_with_state_and_iss,
    forms_without_this_browsers_token_change_nothing,
    a_wrong_password_and_an_unknown_user_read_the_same,
    denied_consent_is_access_denied,
    a_browser_session_skips_sign_in_until_the_user_is_disabled,
    logout_ends_the_browser_session,
    a_public_loopback_client_riding_a_session_is_asked,
);
