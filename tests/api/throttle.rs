//! Login throttling under parallel and hostile use: attempts counted before they are verified,
//! keyed per principal and source address (`X-Forwarded-For` believed only from
//! `TESSERA_TRUSTED_PROXIES`), and the source address on every audit event.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::Value;
use tokio::sync::Barrier;

use crate::both_backends;
use crate::helpers::{ADMIN_ID, Backend, TestApp, TestDb, assert_error};

/// The threshold of one principal from one address (`domain::throttle::PER_SOURCE`).
const PER_SOURCE: usize = 5;

/// An instance that believes `X-Forwarded-For` from the test's own peer, 127.0.0.1: each
/// request can then speak for any address.
async fn behind_a_proxy(backend: Backend) -> TestApp {
    let db = Arc::new(TestDb::new(backend).await);
    TestApp::spawn_on(db, |s| s.set("trusted_proxies", "127.0.0.1/32")).await
}

async fn password_login(
    app: &TestApp,
    client: (&str, &str),
    from: &str,
    username: &str,
    password: &str,
) -> reqwest::Response {
    app.request(reqwest::Method::POST, "/token")
        .basic_auth(client.0, Some(client.1))
        .header("x-forwarded-for", from)
        .form(&[
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
        ])
        .send()
        .await
        .unwrap()
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    app.db.scalar(sql).await
}

/// 64 concurrent wrong passwords for one user from one address: at most the threshold are
/// verified (each verified one is a `login_failed` event and a 400), the rest answer 429
/// `slow_down` with Retry-After; meanwhile the real user logs in from another address.
async fn a_burst_of_wrong_passwords_verifies_at_most_the_threshold(backend: Backend) {
    let app = Arc::new(behind_a_proxy(backend).await);
    let (id, secret) = app.standard_client().await;
    app.create_user("erin", "erin's password").await;
    let burst = 64;
    let hashed_before = app.issuer.password_verifications();
    let start = Arc::new(Barrier::new(burst + 1));
    let mut guesses = Vec::new();
    for n in 0..burst {
        let (app, id, secret, start) = (
            Arc::clone(&app),
            id.clone(),
            secret.clone(),
            Arc::clone(&start),
        );
        guesses.push(tokio::spawn(async move {
            start.wait().await;
            let response = password_login(
                &app,
                (&id, &secret),
                "198.51.100.7",
                "erin",
                &format!("guess {n}"),
            )
            .await;
            let status = response.status();
            let retry_after = response.headers().contains_key("retry-after");
            let body: Value = response.json().await.unwrap();
            (
                status,
                retry_after,
                body["error"].as_str().unwrap_or("").to_owned(),
            )
        }));
    }
    start.wait().await;
    // The real user, from elsewhere, during the burst.
    let real = password_login(
        &app,
        (&id, &secret),
        "192.0.2.200",
        "erin",
        "erin's password",
    )
    .await;
    assert_eq!(real.status(), 200, "{}", real.text().await.unwrap());
    let (mut verified, mut throttled, mut busy) = (0, 0, 0);
    for guess in guesses {
        match guess.await.unwrap() {
            (StatusCode::BAD_REQUEST, _, error) if error == "invalid_grant" => verified += 1,
            (StatusCode::TOO_MANY_REQUESTS, true, error) if error == "slow_down" => throttled += 1,
            (StatusCode::SERVICE_UNAVAILABLE, true, _) => busy += 1,
            other => panic!("unexpected answer in the burst: {other:?}"),
        }
    }
    // Every argon2id run of this instance: the guesses, and the real user's one login.
    let hashed = app.issuer.password_verifications() - hashed_before;
    eprintln!(
        "burst of {burst}: {hashed} argon2id verifications (the real login included), \
         {verified} answered invalid_grant, {throttled} slow_down, {busy} busy"
    );
    assert!(
        hashed <= PER_SOURCE as u64 + 1,
        "{hashed} verifications for {PER_SOURCE} allowed guesses and one login"
    );
    assert!(verified <= PER_SOURCE, "{verified} guesses were verified");
    assert_eq!(verified + throttled + busy, burst);
    // Every verification of a wrong password is recorded: the store agrees.
    let failed = count(
        &app,
        "select count(*) from audit_event where event_type = 'login_failed'",
    )
    .await;
    assert_eq!(failed, verified as i64);
    assert!(failed <= PER_SOURCE as i64);
    // The guesser's address stays blocked; the user, from elsewhere, does not.
    let response = password_login(
        &app,
        (&id, &secret),
        "198.51.100.7",
        "erin",
        "erin's password",
    )
    .await;
    assert_error(response, 429, "slow_down").await;
    let response = password_login(
        &app,
        (&id, &secret),
        "192.0.2.201",
        "erin",
        "erin's password",
    )
    .await;
    assert_eq!(response.status(), 200);
}

/// The bootstrap admin cannot be locked out by guesses from another address.
async fn guessing_the_admin_secret_never_locks_the_admin_out_from_elsewhere(backend: Backend) {
    let app = behind_a_proxy(backend).await;
    let guess = || {
        app.request(reqwest::Method::GET, "/admin/keys")
            .basic_auth(ADMIN_ID, Some("guess"))
            .header("x-forwarded-for", "198.51.100.7")
    };
    for _ in 0..PER_SOURCE {
        assert_error(guess().send().await.unwrap(), 401, "invalid_client").await;
    }
    assert_error(guess().send().await.unwrap(), 429, "slow_down").await;
    let real = app
        .admin(reqwest::Method::GET, "/admin/keys")
        .header("x-forwarded-for", "192.0.2.10")
        .send()
        .await
        .unwrap();
    assert_eq!(real.status(), 200);
}

/// Without trusted proxies, `X-Forwarded-For` is the client's own claim: ignored, so it can
/// neither escape a block nor forge the audited address.
async fn an_untrusted_peers_forwarded_for_is_ignored(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (id, secret) = app.standard_client().await;
    app.create_user("frank", "frank's password").await;
    for n in 0..PER_SOURCE {
        let from = format!("198.51.100.{n}");
        let response = password_login(&app, (&id, &secret), &from, "frank", "wrong").await;
        assert_error(response, 400, "invalid_grant").await;
    }
    let response = password_login(
        &app,
        (&id, &secret),
        "192.0.2.99",
        "frank",
        "frank's password",
    )
    .await;
    assert_error(response, 429, "slow_down").await;
    let forged = count(
        &app,
        "select count(*) from audit_event where source_addr is null or source_addr <> '127.0.0.1'",
    )
    .await;
    assert_eq!(forged, 0);
}

/// Every event a request causes records where it came from: admin changes, key changes,
/// logins (failed or not), revocations.
async fn every_audit_event_carries_the_source_address(backend: Backend) {
    let app = behind_a_proxy(backend).await;
    let from = "203.0.113.9";
    let admin = |method: reqwest::Method, path: &str| {
        app.admin(method, path).header("x-forwarded-for", from)
    };
    let created: Value = admin(reqwest::Method::POST, "/admin/clients")
        .json(&serde_json::json!({
            "grant_types": ["password", "refresh_token"],
            "scopes": ["read"],
            "audiences": ["https://api.example.com"],
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["client_id"].as_str().unwrap().to_owned();
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    let role = admin(reqwest::Method::PUT, "/admin/roles/reader")
        .json(&serde_json::json!({"scopes": ["read"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(role.status(), 201);
    let user: Value = admin(reqwest::Method::POST, "/admin/users")
        .json(&serde_json::json!({"username": "gina", "password": "gina's password", "roles": ["reader"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let user_id = user["id"].as_str().unwrap().to_owned();
    let response = password_login(&app, (&id, &secret), from, "gina", "wrong").await;
    assert_error(response, 400, "invalid_grant").await;
    let tokens: Value = password_login(&app, (&id, &secret), from, "gina", "gina's password")
        .await
        .json()
        .await
        .unwrap();
    let response = app
        .request(reqwest::Method::POST, "/revoke")
        .basic_auth(&id, Some(&secret))
        .header("x-forwarded-for", from)
        .form(&[("token", tokens["refresh_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = admin(
        reqwest::Method::POST,
        &format!("/admin/clients/{id}/secret"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    let response = admin(reqwest::Method::PATCH, &format!("/admin/clients/{id}"))
        .json(&serde_json::json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = admin(reqwest::Method::PATCH, &format!("/admin/users/{user_id}"))
        .json(&serde_json::json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // A key rotation, once the next key has been published for the JWKS max-age.
    app.clock.advance(time::Duration::seconds(301));
    let response = admin(reqwest::Method::POST, "/admin/keys/rotate")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());

    let audit: Value = admin(reqwest::Method::GET, "/admin/audit?limit=100")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let events = audit["events"].as_array().unwrap();
    let mut types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    types.sort();
    types.dedup();
    for expected in [
        "client_created",
        "user_created",
        "login_failed",
        "session_created",
        "revoked",
        "client_secret_rotated",
        "client_disabled",
        "user_disabled",
        "key_rotated",
    ] {
        assert!(
            types.contains(&expected),
            "{expected} missing from {types:?}"
        );
    }
    for event in events {
        assert_eq!(event["source_addr"], from, "{event}");
    }
}

both_backends!(
    a_burst_of_wrong_passwords_verifies_at_most_the_threshold,
    guessing_the_admin_secret_never_locks_the_admin_out_from_elsewhere,
    an_untrusted_peers_forwarded_for_is_ignored,
    every_audit_event_carries_the_source_address,
);
