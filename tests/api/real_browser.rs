//! One flow in a real browser: headless Chromium, driven over WebDriver by chromedriver (Debian's
//! `chromium` and `chromium-driver`, installed by `.ci/run`), signs in, consents and lands on a
//! loopback redirect URI served here; the code is then exchanged with the `oauth2` crate.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{ClientBuilder, Locator};
use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, CsrfToken, PkceCodeChallenge, RedirectUrl, Scope,
    TokenResponse, TokenUrl,
};
use tokio::sync::mpsc;

use crate::helpers::{Backend, TestApp, jwt_claims};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// Where the screenshots go (outside the repository): `TESSERA_SCREENSHOT_DIR`, else the
/// system's temporary directory.
fn screenshot_dir() -> std::path::PathBuf {
    std::env::var_os("TESSERA_SCREENSHOT_DIR").map_or_else(std::env::temp_dir, Into::into)
}

/// chromedriver on a free port, ended when dropped.
struct Driver {
    child: tokio::process::Child,
    url: String,
}

impl Driver {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = tokio::process::Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let url = format!("http://127.0.0.1:{port}");
        // Ready when it answers /status (a readiness wait, not a timing assertion).
        let http = reqwest::Client::new();
        for _ in 0..100 {
            if http
                .get(format!("{url}/status"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Self { child, url };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not answer on {url}");
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// The client's loopback redirect URI: answers a page and hands the query to the test.
async fn loopback_callback() -> (SocketAddr, mpsc::Receiver<String>) {
    let (sender, receiver) = mpsc::channel(1);
    let router = axum::Router::new().route(
        "/callback",
        axum::routing::get(
            move |axum::extract::RawQuery(query): axum::extract::RawQuery| {
                let sender = sender.clone();
                async move {
                    let _ = sender.send(query.unwrap_or_default()).await;
                    axum::response::Html("<!doctype html><title>Done</title><p>Signed in.</p>")
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (addr, receiver)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_signs_in_consents_and_lands_on_the_loopback_redirect() {
    if !std::path::Path::new(CHROMEDRIVER).exists() {
        eprintln!(
            "\n\n*** SKIPPED: {CHROMEDRIVER} is missing; install Debian's chromium and \
             chromium-driver (.ci/run does) to run the real-browser test ***\n\n"
        );
        return;
    }
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.create_user("dana", "dana's long password").await;
    let (id, _) = app
        .create_client(serde_json::json!({
            "name": "Photo Printer",
            "grant_types": ["authorization_code", "refresh_token"],
            "scopes": ["read", "write"],
            "audiences": ["https://api.example.com"],
            "public": true,
            "redirect_uris": ["http://127.0.0.1/callback"],
        }))
        .await;
    let (callback, mut codes) = loopback_callback().await;
    let client = BasicClient::new(ClientId::new(id))
        .set_auth_uri(AuthUrl::new(format!("{}/authorize", app.url)).unwrap())
        .set_token_uri(TokenUrl::new(format!("{}/token", app.url)).unwrap())
        .set_redirect_uri(RedirectUrl::new(format!("http://{callback}/callback")).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state) = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("read".into()))
        .set_pkce_challenge(challenge)
        .url();

    let driver = Driver::start().await;
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=720,860"],
        }),
    );
    let browser = ClientBuilder::native()
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session");

    browser.goto(url.as_str()).await.unwrap();
    let dir = screenshot_dir();
    std::fs::write(
        dir.join("tessera-sign-in.png"),
        browser.screenshot().await.unwrap(),
    )
    .unwrap();
    // The username field has the focus.
    let focused = browser
        .execute("return document.activeElement.id", vec![])
        .await
        .unwrap();
    assert_eq!(focused, "username");
    browser
        .find(Locator::Id("username"))
        .await
        .unwrap()
        .send_keys("dana")
        .await
        .unwrap();
    browser
        .find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys("dana's long password")
        .await
        .unwrap();
    browser
        .find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let approve = match browser
        .wait()
        .for_element(Locator::Css("button[name=decision][value=approve]"))
        .await
    {
        Ok(approve) => approve,
        Err(error) => panic!(
            "no consent page ({error}): {}",
            browser.source().await.unwrap_or_default()
        ),
    };
    std::fs::write(
        dir.join("tessera-consent.png"),
        browser.screenshot().await.unwrap(),
    )
    .unwrap();
    approve.click().await.unwrap();

    let query = tokio::time::timeout(Duration::from_secs(30), codes.recv())
        .await
        .expect("the browser reaches the redirect URI")
        .unwrap();
    let params: std::collections::BTreeMap<String, String> =
        url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
    assert_eq!(params.get("state"), Some(state.secret()));
    assert_eq!(params.get("iss"), Some(&app.url));
    let tokens = client
        .exchange_code(AuthorizationCode::new(params["code"].clone()))
        .set_pkce_verifier(verifier)
        .request_async(
            &oauth2::reqwest::ClientBuilder::new()
                .redirect(oauth2::reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(jwt_claims(tokens.access_token().secret())["scope"], "read");
    browser.close().await.unwrap();
}
