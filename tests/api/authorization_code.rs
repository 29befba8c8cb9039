//! The authorization code grant's /token side (RFC 6749 §4.1.3, RFC 7636): codes are issued
//! through the library, as /authorize does after sign-in and consent, and exchanged over HTTP.
//! Success, PKCE, reuse detection and its order of checks, expiry, the race of two exchanges,
//! browser sessions ending with their user, and the admin API's redirect URIs.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Digest;
use tessera::domain::authorize::CodeGrant;

use crate::both_backends;
use crate::helpers::{
    ADMIN_ID, ADMIN_SECRET, Backend, REDIRECT_URI, TestApp, assert_error, jwt_claims,
};

/// RFC 7636 Appendix B's verifier, and another one.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const OTHER_VERIFIER: &str = "Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5";

fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()))
}

/// A confidential code client, a public one, and alice (role `member`: read write).
struct World {
    client: (String, String),
    public: String,
    alice: uuid::Uuid,
}

async fn world(app: &TestApp) -> World {
    let (id, secret) = app.code_client(false).await;
    let (public, _) = app.code_client(true).await;
    let alice = app.create_user("alice", "alice's password").await;
    World {
        client: (id, secret.unwrap()),
        public,
        alice: alice.parse().unwrap(),
    }
}

/// A code for `client_id` and alice, as /authorize issues one after approval.
async fn code_for(app: &TestApp, w: &World, client_id: &str, scope: &str) -> String {
    app.issuer
        .issue_code(CodeGrant {
            client_id: client_id.to_owned(),
            redirect_uri: REDIRECT_URI.to_owned(),
            code_challenge: challenge(VERIFIER),
            scope: scope.to_owned(),
            user_id: w.alice,
            browser_session_id: None,
        })
        .await
        .unwrap()
}

async fn code(app: &TestApp, w: &World) -> String {
    code_for(app, w, &w.client.0, "read write").await
}

/// POST /token grant_type=authorization_code as the confidential client.
async fn exchange(
    app: &TestApp,
    w: &World,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> reqwest::Response {
    let (id, secret) = &w.client;
    app.token(
        Some((id, secret)),
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
        ],
    )
    .await
}

/// The same as the public client, which authenticates by `client_id` alone.
async fn exchange_public(app: &TestApp, w: &World, code: &str) -> reqwest::Response {
    app.token(
        None,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &w.public),
            ("code", code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", VERIFIER),
        ],
    )
    .await
}

async fn tokens(response: reqwest::Response) -> Value {
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// The `sid` of the access token of a /token answer.
fn sid(tokens: &Value) -> String {
    let claims = jwt_claims(tokens["access_token"].as_str().unwrap());
    claims["sid"].as_str().expect("a sid").to_owned()
}

/// A code of the confidential client, exchanged once: the code, the tokens and their `sid`.
async fn exchanged_code(app: &TestApp, w: &World) -> (String, Value, String) {
    let code = code(app, w).await;
    let first = tokens(exchange(app, w, &code, REDIRECT_URI, VERIFIER).await).await;
    let sid = sid(&first);
    (code, first, sid)
}

async fn refresh(app: &TestApp, w: &World, token: &str) -> reqwest::Response {
    let (id, secret) = &w.client;
    app.token(
        Some((id, secret)),
        &[("grant_type", "refresh_token"), ("refresh_token", token)],
    )
    .await
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    app.db.scalar(sql).await
}

async fn revoked_sessions(app: &TestApp, sid: &str) -> i64 {
    count(
        app,
        &format!(
            "select count(*) from session where session_id = '{sid}' and revoked_at is not null"
        ),
    )
    .await
}

async fn reuse_events(app: &TestApp) -> i64 {
    count(
        app,
        "select count(*) from audit_event where event_type = 'authorization_code_reuse_detected'",
    )
    .await
}

async fn an_exchange_starts_a_session_like_a_password_login(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let w = world(&app).await;
    let code = code(&app, &w).await;
    assert!(code.starts_with("tsc_") && code.len() == 4 + 43, "{code}");
    let response = exchange(&app, &w, &code, REDIRECT_URI, VERIFIER).await;
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body = tokens(response).await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "read write");
    let refresh_token = body["refresh_token"].as_str().expect("a refresh token");
    assert!(refresh_token.starts_with("tsr_"));
    let claims = jwt_claims(body["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], w.alice.to_string());
    assert_eq!(claims["client_id"], w.client.0);
    assert_eq!(claims["scope"], "read write");
    assert_eq!(claims["roles"], json!(["member"]));
    assert_eq!(claims["aud"], "https://api.example.com");
    assert!(claims["status"]["status_list"]["idx"].is_i64(), "{claims}");
    let sid = claims["sid"].as_str().expect("a sid");
    // The code is used, and names the session it made; only its digest is stored.
    assert_eq!(
        count(
            &app,
            &format!(
                "select count(*) from authorization_code where used_at is not null and session_id = '{sid}'"
            )
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &app,
            &format!(
                "select count(*) from audit_event where event_type = 'session_created' and session_id = '{sid}' and source_addr is not null"
            )
        )
        .await,
        1
    );
    let leaked = count(
        &app,
        "select count(*) from audit_event where cast(detail as text) like '%tsc_%'",
    )
    .await;
    assert_eq!(leaked, 0, "no code in the audit log");
    // The refresh token works as any other.
    let next = tokens(refresh(&app, &w, refresh_token).await).await;
    assert_eq!(self::sid(&next), sid);
}

async fn a_public_client_sends_its_client_id(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let w = world(&app).await;
    let code = code_for(&app, &w, &w.public, "read").await;
    let body = tokens(exchange_public(&app, &w, &code).await).await;
    assert_eq!(body["scope"], "read");
    assert!(body["refresh_token"].is_string());
}

/// Scope = what the user approved ∩ what the user holds now ∩ the client's scopes.
async fn the_scope_is_narrowed_to_what_the_user_holds_now(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let w = world(&app).await;
    let code = code(&app, &w).await;
    app.put_role("member", &["read"]).await;
    let body = tokens(exchange(&app, &w, &code, REDIRECT_URI, VERIFIER).await).await;
    assert_eq!(body["scope"], "read");
    assert_eq!(
        jwt_claims(body["access_token"].as_str().unwrap())["scope"],
        "read"
    );
    // Nothing approved is held any more: invalid_grant.
    let code = code_for(&app, &w, &w.client.0, "write").await;
    assert_error(
        exchange(&app, &w, &code, REDIRECT_URI, VERIFIER).await,
        400,
        "invalid_grant",
    )
    .await;
}

async fn a_wrong_verifier_does_not_use_the_code_up(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let w = world(&app).await;
    let code = code(&app, &w).await;
    for wrong in [OTHER_VERIFIER, &VERIFIER[1..], &format!("{VERIFIER}x")] {
        assert_error(
            exchange(&app, &w, &code, REDIRECT_URI, wrong).await,
            400,
            "invalid_grant",
        )
        .await;
    }
    tokens(exchange(&app, &w, &code, REDIRECT_URI, VERIFIER).await).await;
}

/// Only S256: the plain method (the challenge itself as verifier) fails, and a verifier is
/// required.
async fn a_plain_or_missing_verifier_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let w = world(&app).await;
    let code = code(&app, &w).await;
    assert_error(
        exchange(&app, &w, &code, REDIRECT_URI, &challenge(VERIFIER)).await,
        400,
        "invalid_grant",
    )
    .await;
    let (id, secret) = &w.client;
    let missing = app
        .token(
            Some((id, secret)),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
            ],
        )
        .await;
    let body = assert_error(missing, 400, "invalid_request").await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("code_verifier")
    );
    // Neither used the code up.
    tokens(exchange(&app, &w, &code, REDIRECT_URI, VERIFIER).await).await;
}

async fn a_wrong_redirect_uri_or_another_clients_code_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let w = world(&app).await;
    let code = code(&app, &w).await;
    // Registered for the client, but not the one the code was issued for; and near misses.
    for wrong in [
        "http://127.0.0.1/cb",
        "https://app.example.com/cb/",
        "https://app.example.com/CB",
    ] {
        assert_error(
            exchange(&app, &w, &code, wrong, VERIFIER).await,
            400,
            "invalid_grant",
        )
        .await;
    }
    // The public client presenting the confidential client's code.
    let stolen = exchange_public(&app, &w, &code).await;
    assert_error(stolen, 400, "invalid_grant").await;
    // Nothing was used up.
    tokens(exchange(&app, &w, &code, REDIRECT_URI, VERIFIER).await).await;
    // Unknown and malformed codes.
    for bogus in [
        "tsc_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "nope",
        &code[4..],
    ] {
        assert_error(
            exchange(&app, &w, bogus, REDIRECT_URI, VERIFIER).await,
            400,
            "invalid_grant",
        )
        .await;
    }
}

async fn an_expired_code_is_invalid_grant(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let w = world(&app).await;
    let code = code(&app, &w).await;
    app.clock.advance(time::Duration::seconds(60));
    assert_error(
        exchange(&app, &w, &code, REDIRECT_URI, VERIFIER).await,
        400,
        "invalid_grant",
    )
    .await;
    assert_eq!(count(&app, "select count(*) from session").await, 0);
    assert_eq!(reuse_events(&app).await, 0);
}

async fn a_client_without_the_grant_is_unauthorized(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let w = world(&app).await;
    let (id, secret) = app.standard_client().await;
    let code = code(&app, &w).await;
    let response = app
        .token(
            Some((&id, &secret)),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", VERIFIER),
            ],
        )
        .await;
    assert_error(response, 400, "unauthorized_client").await;
}

/// RFC 6749 §10.5: a second exchange of a used code revokes the session the first made (its
/// access tokens by `sid`, its refresh tokens), and is audited.
async fn reuse_revokes_the_session_the_code_made(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let w = world(&app).await;
    let (code, first, sid) = exchanged_code(&app, &w).await;
    assert_error(
        exchange(&app, &w, &code, REDIRECT_URI, VERIFIER).await,
        400,
        "invalid_grant",
    )
    .await;
    assert_eq!(revoked_sessions(&app, &sid).await, 1);
    assert_eq!(
        count(
            &app,
            &format!("select count(*) from revocation where kind = 'session' and value = '{sid}'")
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &app,
            &format!(
                "select count(*) from audit_event where event_type = 'authorization_code_reuse_detected' and session_id = '{sid}' and subject = '{}' and source_addr is not null",
                w.alice
            )
        )
        .await,
        1
    );
    assert_error(
        refresh(&app, &w, first["refresh_token"].as_str().unwrap()).await,
        400,
        "invalid_grant",
    )
    .await;
    // The access token is inactive to introspection.
    let (introspector, introspector_secret) = app
        .create_client(json!({
            "grant_types": ["client_credentials"],
            "audiences": ["https://api.example.com"],
            "introspect": true,
        }))
        .await;
    let answer: Value = app
        .request(Method::POST, "/introspect")
        .basic_auth(&introspector, introspector_secret.as_deref())
        .form(&[("token", first["access_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer, json!({"active": false}));
}

/// OAuth 2.1 §7.5.2: a replay that fails client authentication, the redirect URI or PKCE is
/// refused before reuse is considered, so holding a stolen code is not enough to log the user
/// out.
async fn a_replay_failing_the_checks_revokes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let w = world(&app).await;
    let (code, first, sid) = exchanged_code(&app, &w).await;
    assert_error(
        exchange(&app, &w, &code, REDIRECT_URI, OTHER_VERIFIER).await,
        400,
        "invalid_grant",
    )
    .await;
    assert_error(
        exchange(&app, &w, &code, "http://127.0.0.1/cb", VERIFIER).await,
        400,
        "invalid_grant",
    )
    .await;
    let other_client = exchange_public(&app, &w, &code).await;
    assert_error(other_client, 400, "invalid_grant").await;
    let wrong_secret = app
        .token(
            Some((&w.client.0, "tss_wrong")),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", VERIFIER),
            ],
        )
        .await;
    assert_error(wrong_secret, 401, "invalid_client").await;
    assert_eq!(revoked_sessions(&app, &sid).await, 0);
    assert_eq!(reuse_events(&app).await, 0);
    tokens(refresh(&app, &w, first["refresh_token"].as_str().unwrap()).await).await;
}

/// Concurrent exchanges of one code: exactly one gets tokens. The others passed every check
/// and presented a code that is used by the time they are refused, so they are reuse: the
/// session is revoked, as RFC 6749 §10.5 asks of any second exchange.
async fn of_concurrent_exchanges_of_one_code_exactly_one_wins(backend: Backend) {
    let app = Arc::new(TestApp::spawn(backend).await);
    let w = Arc::new(world(&app).await);
    for round in 0..5 {
        let code = code(&app, &w).await;
        let barrier = Arc::new(tokio::sync::Barrier::new(6));
        let mut tasks = Vec::new();
        for _ in 0..6 {
            let (app, w, code, barrier) = (
                Arc::clone(&app),
                Arc::clone(&w),
                code.clone(),
                Arc::clone(&barrier),
            );
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let response = exchange(&app, &w, &code, REDIRECT_URI, VERIFIER).await;
                let status = response.status();
                let body: Value = response.json().await.unwrap();
                (status, body)
            }));
        }
        let mut answers = Vec::new();
        for task in tasks {
            answers.push(task.await.unwrap());
        }
        let winners: Vec<&Value> = answers
            .iter()
            .filter(|(s, _)| *s == StatusCode::OK)
            .map(|(_, b)| b)
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {answers:?}");
        for (status, body) in &answers {
            assert!(
                *status == StatusCode::OK
                    || (*status == StatusCode::BAD_REQUEST && body["error"] == "invalid_grant"),
                "round {round}: {answers:?}"
            );
        }
        assert_eq!(
            revoked_sessions(&app, &sid(winners[0])).await,
            1,
            "round {round}"
        );
    }
    // One session per code, never two.
    assert_eq!(count(&app, "select count(*) from session").await, 5);
}

/// Whether a browser session cookie names a live session (and touches it).
async fn signed_in(
    app: &TestApp,
    cookie: &tessera::domain::browser_sessions::BrowserCookie,
) -> bool {
    app.issuer
        .browser_session(cookie.expose())
        .await
        .unwrap()
        .is_some()
}

/// Browser sessions end with their user: disabled, subject revoked, password changed.
async fn browser_sessions_end_with_their_user(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let w = world(&app).await;
    let issuer = &app.issuer;
    let (cookie, started) = issuer.start_browser_session(w.alice, None).await.unwrap();
    let found = issuer
        .browser_session(cookie.expose())
        .await
        .unwrap()
        .expect("live");
    assert_eq!(found.browser_session_id, started.browser_session_id);
    assert!(
        issuer
            .browser_session(&format!("{}x", cookie.expose()))
            .await
            .unwrap()
            .is_none()
    );
    // A subject revocation (POST /revoke) ends it.
    let revoke = |subject: String| {
        app.request(Method::POST, "/revoke")
            .basic_auth(ADMIN_ID, Some(ADMIN_SECRET))
            .form(&[("subject", subject)])
            .send()
    };
    assert_eq!(
        revoke(w.alice.to_string()).await.unwrap().status(),
        StatusCode::OK
    );
    assert!(!signed_in(&app, &cookie).await);
    // A new password ends it.
    let (cookie, _) = issuer.start_browser_session(w.alice, None).await.unwrap();
    let patch = |body: Value| {
        app.admin(Method::PATCH, &format!("/admin/users/{}", w.alice))
            .json(&body)
            .send()
    };
    let changed = patch(json!({"password": "a new password"})).await.unwrap();
    assert_eq!(changed.status(), StatusCode::OK);
    assert!(!signed_in(&app, &cookie).await);
    // Disabling the user ends it.
    let (cookie, _) = issuer.start_browser_session(w.alice, None).await.unwrap();
    assert!(signed_in(&app, &cookie).await);
    let disabled = patch(json!({"disabled": true})).await.unwrap();
    assert_eq!(disabled.status(), StatusCode::OK);
    assert!(!signed_in(&app, &cookie).await);
    // And a code issued before the user was disabled no longer exchanges.
    patch(json!({"disabled": false})).await.unwrap();
    let code = code(&app, &w).await;
    patch(json!({"disabled": true})).await.unwrap();
    assert_error(
        exchange(&app, &w, &code, REDIRECT_URI, VERIFIER).await,
        400,
        "invalid_grant",
    )
    .await;
}

/// Absolute and idle lifetimes, and logout.
async fn browser_sessions_expire_idle_or_absolute_and_end_at_logout(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let w = world(&app).await;
    let issuer = &app.issuer;
    let minutes = |m| time::Duration::minutes(m);
    // Default lifetimes: 1 hour idle, 24 hours absolute. Used every 50 minutes it lives on...
    let (cookie, _) = issuer.start_browser_session(w.alice, None).await.unwrap();
    for _ in 0..3 {
        app.clock.advance(minutes(50));
        assert!(signed_in(&app, &cookie).await);
    }
    // ...until an hour passes unused.
    app.clock.advance(minutes(61));
    assert!(!signed_in(&app, &cookie).await);
    // Never past 24 hours, however often used.
    let (cookie, _) = issuer.start_browser_session(w.alice, None).await.unwrap();
    for _ in 0..28 {
        app.clock.advance(minutes(50));
        assert!(signed_in(&app, &cookie).await);
    }
    app.clock.advance(minutes(50));
    assert!(!signed_in(&app, &cookie).await);
    // Logout.
    let (cookie, _) = issuer.start_browser_session(w.alice, None).await.unwrap();
    issuer.end_browser_session(cookie.expose()).await.unwrap();
    assert!(!signed_in(&app, &cookie).await);
    issuer.end_browser_session(cookie.expose()).await.unwrap();
    issuer.end_browser_session("not a cookie").await.unwrap();
}

async fn redirect_uris_are_validated_at_registration_and_shown(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let create = |body: Value| app.admin(Method::POST, "/admin/clients").json(&body).send();
    let base = |uris: Value| {
        json!({
            "grant_types": ["authorization_code"],
            "audiences": ["https://api.example.com"],
            "public": true,
            "redirect_uris": uris,
        })
    };
    for bad in [
        json!(["https://app.example.com/cb#x"]),
        json!(["https://*.example.com/cb"]),
        json!(["http://app.example.com/cb"]),
        json!(["http://localhost:8000/cb"]),
        json!(["/cb"]),
        json!(["javascript:alert(1)"]),
        json!([]),
    ] {
        let body = assert_error(
            create(base(bad.clone())).await.unwrap(),
            400,
            "invalid_request",
        )
        .await;
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .starts_with("redirect_uris"),
            "{bad}: {body}"
        );
    }
    assert_eq!(
        count(&app, "select count(*) from client where is_public").await,
        0
    );
    let created = create(json!({
        "client_id": "native",
        "grant_types": ["authorization_code", "refresh_token"],
        "audiences": ["https://api.example.com"],
        "public": true,
        "first_party": true,
        "redirect_uris": ["http://127.0.0.1/cb", "com.example.app:/cb", "http://127.0.0.1/cb"],
    }))
    .await
    .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let shown: Value = app
        .admin_get("/admin/clients/native")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        shown["redirect_uris"],
        json!(["http://127.0.0.1/cb", "com.example.app:/cb"])
    );
    assert_eq!(shown["first_party"], true);
    // The loopback URI matches with any port; nothing else varies.
    let client = app
        .issuer
        .authorization_client("native", "http://127.0.0.1:51234/cb")
        .await;
    assert!(client.is_ok());
    for wrong in [
        "http://127.0.0.1:51234/cb/",
        "http://127.0.0.1:51234/cb#x",
        "http://[::1]:51234/cb",
        "http://127.0.0.1:051234/cb",
        "com.example.app:/cb2",
    ] {
        assert!(
            app.issuer
                .authorization_client("native", wrong)
                .await
                .is_err(),
            "{wrong}"
        );
    }
    assert!(
        app.issuer
            .authorization_client("nobody", "http://127.0.0.1/cb")
            .await
            .is_err()
    );
    // PATCH replaces them, validated the same way; a code client keeps at least one.
    let patch = |body: Value| {
        app.admin(Method::PATCH, "/admin/clients/native")
            .json(&body)
            .send()
    };
    assert_error(
        patch(json!({"redirect_uris": []})).await.unwrap(),
        400,
        "invalid_request",
    )
    .await;
    assert_error(
        patch(json!({"redirect_uris": ["https://a.example/#f"]}))
            .await
            .unwrap(),
        400,
        "invalid_request",
    )
    .await;
    assert_error(patch(json!({})).await.unwrap(), 400, "invalid_request").await;
    let patched: Value =
        patch(json!({"redirect_uris": ["https://a.example/cb"], "first_party": false}))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(patched["redirect_uris"], json!(["https://a.example/cb"]));
    assert_eq!(patched["first_party"], false);
    assert_eq!(patched["disabled"], false);
    // The registry follows at once.
    assert!(
        app.issuer
            .authorization_client("native", "http://127.0.0.1/cb")
            .await
            .is_err()
    );
    assert!(
        app.issuer
            .authorization_client("native", "https://a.example/cb")
            .await
            .is_ok()
    );
}

both_backends!(
    an_exchange_starts_a_session_like_a_password_login,
    a_public_client_sends_its_client_id,
    the_scope_is_narrowed_to_what_the_user_holds_now,
    a_wrong_verifier_does_not_use_the_code_up,
    a_plain_or_missing_verifier_is_refused,
    a_wrong_redirect_uri_or_another_clients_code_is_refused,
    an_expired_code_is_invalid_grant,
    a_client_without_the_grant_is_unauthorized,
    reuse_revokes_the_session_the_code_made,
    a_replay_failing_the_checks_revokes_nothing,
    of_concurrent_exchanges_of_one_code_exactly_one_wins,
    browser_sessions_end_with_their_user,
    browser_sessions_expire_idle_or_absolute_and_end_at_logout,
    redirect_uris_are_validated_at_registration_and_shown,
);
