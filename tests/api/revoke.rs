//! Revocation (RFC 7009 and the admin selectors), introspection (RFC 7662) and the audit log.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{ADMIN_ID, ADMIN_SECRET, Backend, TestApp, TestDb, assert_error, eventually};

const ADMIN: (&str, &str) = (ADMIN_ID, ADMIN_SECRET);

struct World {
    client: (String, String),
    introspector: (String, String),
    user: String,
}

async fn world(app: &TestApp) -> World {
    let client = app.standard_client().await;
    let (id, secret) = app
        .create_client(
            json!({"grant_types": ["client_credentials"], "audiences": ["a"], "introspect": true}),
        )
        .await;
    let user = app.create_user("alice", "alice's password").await;
    World {
        client,
        introspector: (id, secret.unwrap()),
        user,
    }
}

async fn form(
    app: &TestApp,
    path: &str,
    auth: (&str, &str),
    form: &[(&str, &str)],
) -> reqwest::Response {
    app.request(Method::POST, path)
        .basic_auth(auth.0, Some(auth.1))
        .form(form)
        .send()
        .await
        .unwrap()
}

async fn login(app: &TestApp, w: &World, username: &str, password: &str) -> reqwest::Response {
    let (id, secret) = &w.client;
    app.token(
        Some((id, secret)),
        &[
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
        ],
    )
    .await
}

async fn tokens(app: &TestApp, w: &World) -> (String, String) {
    let body: Value = login(app, w, "alice", "alice's password")
        .await
        .json()
        .await
        .unwrap();
    (
        body["access_token"].as_str().unwrap().to_owned(),
        body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

async fn introspect(app: &TestApp, w: &World, token: &str) -> Value {
    let (id, secret) = &w.introspector;
    let response = form(app, "/introspect", (id, secret), &[("token", token)]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    response.json().await.unwrap()
}

async fn active(app: &TestApp, w: &World, token: &str) -> bool {
    let answer = introspect(app, w, token).await;
    let active = answer["active"].as_bool().unwrap();
    if !active {
        assert_eq!(
            answer,
            json!({"active": false}),
            "an inactive answer says nothing else"
        );
    }
    active
}

async fn refresh(app: &TestApp, w: &World, token: &str) -> reqwest::Response {
    let (id, secret) = &w.client;
    app.token(
        Some((id, secret)),
        &[("grant_type", "refresh_token"), ("refresh_token", token)],
    )
    .await
}

async fn introspection_of_every_token_kind(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let w = world(&app).await;
    let (access, refresh_token) = tokens(&app, &w).await;

    let answer = introspect(&app, &w, &access).await;
    assert_eq!(answer["active"], true);
    assert_eq!(answer["token_type"], "Bearer");
    assert_eq!(answer["sub"], w.user.as_str());
    assert_eq!(answer["client_id"], w.client.0.as_str());
    assert_eq!(answer["scope"], "read write");
    assert_eq!(answer["iss"], app.url.as_str());
    assert_eq!(answer["aud"], "https://api.example.com");
    for claim in ["exp", "iat", "jti", "sid"] {
        assert!(!answer[claim].is_null(), "{claim}");
    }

    let answer = introspect(&app, &w, &refresh_token).await;
    assert_eq!(answer["active"], true);
    assert_eq!(answer["token_type"], "refresh_token");
    assert_eq!(answer["sub"], w.user.as_str());
    assert_eq!(answer["sid"], introspect(&app, &w, &access).await["sid"]);
    // Introspecting never uses a token up.
    assert!(active(&app, &w, &refresh_token).await);
    let next: Value = refresh(&app, &w, &refresh_token)
        .await
        .json()
        .await
        .unwrap();
    // A consumed refresh token is inactive, even inside the retry window.
    assert!(!active(&app, &w, &refresh_token).await);
    assert!(active(&app, &w, next["refresh_token"].as_str().unwrap()).await);

    // client_credentials tokens, junk, tampered and expired tokens.
    let cc: Value = app
        .token(
            Some((&w.client.0, &w.client.1)),
            &[("grant_type", "client_credentials")],
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(active(&app, &w, cc["access_token"].as_str().unwrap()).await);
    let mut tampered = access.clone();
    tampered.pop();
    tampered.push(if access.ends_with('A') { 'B' } else { 'A' });
    for junk in ["junk", "a.b.c", "tsr_nothing", tampered.as_str()] {
        assert!(!active(&app, &w, junk).await, "{junk}");
    }
    app.clock.advance(time::Duration::seconds(301));
    assert!(!active(&app, &w, &access).await, "expired");

    let empty = form(
        &app,
        "/introspect",
        (&w.introspector.0, &w.introspector.1),
        &[("token", "")],
    )
    .await;
    assert_error(empty, 400, "invalid_request").await;
    // Who may ask.
    let nobody = app
        .request(Method::POST, "/introspect")
        .form(&[("token", access.as_str())])
        .send()
        .await
        .unwrap();
    assert_error(nobody, 401, "invalid_client").await;
    let wrong = form(
        &app,
        "/introspect",
        (&w.introspector.0, "tss_wrong"),
        &[("token", &access)],
    )
    .await;
    assert_error(wrong, 401, "invalid_client").await;
    let plain = form(
        &app,
        "/introspect",
        (&w.client.0, &w.client.1),
        &[("token", &access)],
    )
    .await;
    assert_error(plain, 403, "access_denied").await;
    assert_eq!(
        form(&app, "/introspect", ADMIN, &[("token", &access)])
            .await
            .status(),
        200
    );
}

async fn rfc7009_token_revocation(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let w = world(&app).await;
    let (id, secret) = (w.client.0.as_str(), w.client.1.as_str());
    let (access, refresh_token) = tokens(&app, &w).await;

    // Unknown and invalid tokens: 200, nothing to see; the body is an empty JSON object, as
    // for every token revocation.
    for junk in ["junk", "tsr_junk", "a.b.c"] {
        let response = form(&app, "/revoke", (id, secret), &[("token", junk)]).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "application/json");
        assert_eq!(response.json::<Value>().await.unwrap(), json!({}));
    }
    // Another client's token: 200, and it stays live (no oracle).
    let (other, other_secret) = app.standard_client().await;
    assert_eq!(
        form(
            &app,
            "/revoke",
            (&other, &other_secret),
            &[("token", &access)]
        )
        .await
        .status(),
        200
    );
    assert_eq!(
        form(
            &app,
            "/revoke",
            (&other, &other_secret),
            &[
                ("token", &refresh_token),
                ("token_type_hint", "refresh_token")
            ]
        )
        .await
        .status(),
        200
    );
    assert!(active(&app, &w, &access).await);
    assert!(active(&app, &w, &refresh_token).await);

    // An access token, by its jti: that one only.
    assert_eq!(
        form(
            &app,
            "/revoke",
            (id, secret),
            &[("token", &access), ("token_type_hint", "access_token")]
        )
        .await
        .status(),
        200
    );
    assert!(!active(&app, &w, &access).await);
    assert!(active(&app, &w, &refresh_token).await);

    // A refresh token: its whole session, access tokens included.
    let next: Value = refresh(&app, &w, &refresh_token)
        .await
        .json()
        .await
        .unwrap();
    let (next_access, next_refresh) = (
        next["access_token"].as_str().unwrap(),
        next["refresh_token"].as_str().unwrap(),
    );
    assert_eq!(
        form(&app, "/revoke", (id, secret), &[("token", next_refresh)])
            .await
            .status(),
        200
    );
    assert!(!active(&app, &w, next_refresh).await);
    assert!(!active(&app, &w, next_access).await);
    assert_error(refresh(&app, &w, next_refresh).await, 400, "invalid_grant").await;

    // Errors: no token, bad credentials, a selector from a non-admin.
    assert_error(
        form(&app, "/revoke", (id, secret), &[]).await,
        400,
        "invalid_request",
    )
    .await;
    assert_error(
        form(&app, "/revoke", (id, "tss_wrong"), &[("token", "x")]).await,
        401,
        "invalid_client",
    )
    .await;
    assert_error(
        form(&app, "/revoke", (id, secret), &[("subject", &w.user)]).await,
        403,
        "access_denied",
    )
    .await;
    assert_error(
        form(
            &app,
            "/revoke",
            ADMIN,
            &[("subject", &w.user), ("kid", "x")],
        )
        .await,
        400,
        "invalid_request",
    )
    .await;
}

async fn offboarding_end_to_end(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let w = world(&app).await;
    let (first_access, first_refresh) = tokens(&app, &w).await;
    let next: Value = refresh(&app, &w, &first_refresh)
        .await
        .json()
        .await
        .unwrap();
    let (second_access, second_refresh) = (
        next["access_token"].as_str().unwrap(),
        next["refresh_token"].as_str().unwrap(),
    );
    let (other_access, other_refresh) = tokens(&app, &w).await;

    let response = form(
        &app,
        "/revoke",
        ADMIN,
        &[("username", "alice"), ("disable", "true")],
    )
    .await;
    assert_eq!(response.status(), 200);
    let summary: Value = response.json().await.unwrap();
    assert_eq!(
        summary,
        json!({"selector": "username", "value": "alice", "sessions_revoked": 2, "disabled": true})
    );

    for token in [
        first_access.as_str(),
        second_access,
        other_access.as_str(),
        second_refresh,
        other_refresh.as_str(),
    ] {
        assert!(
            !active(&app, &w, token).await,
            "still active after offboarding"
        );
    }
    assert_error(
        login(&app, &w, "alice", "alice's password").await,
        400,
        "invalid_grant",
    )
    .await;
    assert_error(
        refresh(&app, &w, &other_refresh).await,
        400,
        "invalid_grant",
    )
    .await;

    let enabled = app
        .admin(Method::PATCH, &format!("/admin/users/{}", w.user))
        .json(&json!({"disabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(enabled.status(), 200);
    // Tokens issued before the cut-off stay dead; new logins work. (Next second: iat > cut-off.)
    app.clock.advance(time::Duration::seconds(1));
    let (fresh, _) = tokens(&app, &w).await;
    assert!(active(&app, &w, &fresh).await);
    assert!(!active(&app, &w, &first_access).await);
}

async fn client_session_and_kid_selectors(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let w = world(&app).await;
    let (access, refresh_token) = tokens(&app, &w).await;
    let sid = introspect(&app, &w, &access).await["sid"]
        .as_str()
        .unwrap()
        .to_owned();

    // session_id: that session only.
    let (other_access, _) = tokens(&app, &w).await;
    let summary: Value = form(&app, "/revoke", ADMIN, &[("session_id", &sid)])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(summary["sessions_revoked"], 1);
    assert!(!active(&app, &w, &access).await && !active(&app, &w, &refresh_token).await);
    assert!(active(&app, &w, &other_access).await);

    // kid: the signing key's compromise.
    let kid = {
        use base64::Engine;
        let header = other_access.split('.').next().unwrap();
        let header: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(header)
                .unwrap(),
        )
        .unwrap();
        header["kid"].as_str().unwrap().to_owned()
    };
    let summary: Value = form(&app, "/revoke", ADMIN, &[("kid", &kid)])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        summary,
        json!({"selector": "kid", "value": kid, "sessions_revoked": 0, "disabled": false})
    );
    assert!(
        !active(&app, &w, &other_access).await,
        "every token the key signed is inactive"
    );
    assert!(!app.published_kids().await.contains(&kid));
    let (fresh, _) = tokens(&app, &w).await;
    assert!(
        active(&app, &w, &fresh).await,
        "a fresh key took over signing"
    );

    // client_id with disable: everything of the client, and the client itself.
    let (client_id, client_secret) = (w.client.0.clone(), w.client.1.clone());
    app.clock.advance(time::Duration::seconds(1));
    let summary: Value = form(
        &app,
        "/revoke",
        ADMIN,
        &[("client_id", &client_id), ("disable", "true")],
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(summary["selector"], "client_id");
    assert_eq!(summary["disabled"], true);
    assert!(summary["sessions_revoked"].as_u64().unwrap() >= 1);
    assert!(!active(&app, &w, &fresh).await);
    assert_error(
        app.token(
            Some((&client_id, &client_secret)),
            &[("grant_type", "client_credentials")],
        )
        .await,
        401,
        "invalid_client",
    )
    .await;
    let shown: Value = app
        .admin(Method::GET, &format!("/admin/clients/{client_id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["disabled"], true);

    assert_error(
        form(&app, "/revoke", ADMIN, &[("client_id", "nobody")]).await,
        404,
        "not_found",
    )
    .await;
    // The last enabled admin cannot disable itself this way either; without disable it may
    // revoke what it holds.
    assert_error(
        form(
            &app,
            "/revoke",
            ADMIN,
            &[("client_id", ADMIN_ID), ("disable", "true")],
        )
        .await,
        409,
        "conflict",
    )
    .await;
    let admin: Value = app
        .admin_get(&format!("/admin/clients/{ADMIN_ID}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(admin["disabled"], false);
    assert_error(
        app.admin(Method::PATCH, &format!("/admin/clients/{ADMIN_ID}"))
            .json(&json!({"disabled": true}))
            .send()
            .await
            .unwrap(),
        409,
        "conflict",
    )
    .await;
    assert_error(
        form(
            &app,
            "/revoke",
            ADMIN,
            &[("session_id", &sid), ("disable", "true")],
        )
        .await,
        400,
        "invalid_request",
    )
    .await;
}

async fn the_audit_log_records_security_events_without_secrets(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let w = world(&app).await;
    let (access, refresh_token) = tokens(&app, &w).await;
    assert_error(
        login(&app, &w, "alice", "a wrong password").await,
        400,
        "invalid_grant",
    )
    .await;
    let next: Value = refresh(&app, &w, &refresh_token)
        .await
        .json()
        .await
        .unwrap();
    app.clock.advance(time::Duration::seconds(11));
    assert_error(
        refresh(&app, &w, &refresh_token).await,
        400,
        "invalid_grant",
    )
    .await; // reuse
    form(
        &app,
        "/revoke",
        ADMIN,
        &[("subject", &w.user), ("disable", "true")],
    )
    .await;
    app.admin(Method::PATCH, &format!("/admin/users/{}", w.user))
        .json(&json!({"disabled": false}))
        .send()
        .await
        .unwrap();
    app.admin(
        Method::POST,
        &format!("/admin/clients/{}/secret", w.client.0),
    )
    .send()
    .await
    .unwrap();
    app.clock.advance(time::Duration::seconds(301));
    app.admin(Method::POST, "/admin/keys/rotate")
        .send()
        .await
        .unwrap();

    let response = app
        .admin(Method::GET, "/admin/audit?limit=100")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    let events = body["events"].as_array().unwrap();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    for expected in [
        "client_created",
        "user_created",
        "session_created",
        "login_failed",
        "refresh_token_reuse_detected",
        "revoked",
        "user_enabled",
        "client_secret_rotated",
        "key_rotated",
    ] {
        assert!(
            types.contains(&expected),
            "{expected} missing from {types:?}"
        );
    }
    // Newest first, RFC 3339 times.
    assert_eq!(types[0], "key_rotated");
    assert!(
        time::OffsetDateTime::parse(
            events[0]["time"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339
        )
        .is_ok()
    );
    let revoked = events.iter().find(|e| e["type"] == "revoked").unwrap();
    assert_eq!(revoked["detail"]["selector"], "subject");
    assert_eq!(revoked["actor"], ADMIN_ID);
    // No secret, password or token anywhere in it.
    for secret in [
        access.as_str(),
        refresh_token.as_str(),
        next["refresh_token"].as_str().unwrap(),
        &w.client.1,
        "alice's password",
        "a wrong password",
        ADMIN_SECRET,
    ] {
        assert!(!text.contains(secret), "a secret in the audit log");
    }

    let filtered: Value = app
        .admin(
            Method::GET,
            &format!("/admin/audit?subject={}&type=session_created", w.user),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let filtered = filtered["events"].as_array().unwrap();
    assert_eq!(filtered.len(), 1);
    assert_eq!(filtered[0]["client_id"], w.client.0.as_str());
    let by_client: Value = app
        .admin(
            Method::GET,
            &format!("/admin/audit?client_id={}&limit=1", w.client.0),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(by_client["events"].as_array().unwrap().len(), 1);
    assert_error(
        app.admin(Method::GET, "/admin/audit?limit=0")
            .send()
            .await
            .unwrap(),
        400,
        "invalid_request",
    )
    .await;
    assert_error(
        app.request(Method::GET, "/admin/audit")
            .basic_auth(&w.client.0, Some(&w.client.1))
            .send()
            .await
            .unwrap(),
        401,
        "invalid_client",
    )
    .await;
}

/// Disabling a user through the admin API is an offboarding: their access tokens die too, and
/// so do they when the password is reset.
async fn disabling_or_resetting_a_user_kills_their_access_tokens(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let w = world(&app).await;
    let (access, refresh_token) = tokens(&app, &w).await;
    let patch = |body: Value| {
        app.admin(Method::PATCH, &format!("/admin/users/{}", w.user))
            .json(&body)
            .send()
    };
    assert_eq!(
        patch(json!({"disabled": true})).await.unwrap().status(),
        200
    );
    assert!(!active(&app, &w, &access).await);
    assert!(!active(&app, &w, &refresh_token).await);
    assert_eq!(
        patch(json!({"disabled": false})).await.unwrap().status(),
        200
    );
    app.clock.advance(time::Duration::seconds(1));
    let (access, _) = tokens(&app, &w).await;
    assert!(active(&app, &w, &access).await);
    assert_eq!(
        patch(json!({"password": "alice's new password"}))
            .await
            .unwrap()
            .status(),
        200
    );
    assert!(
        !active(&app, &w, &access).await,
        "a password reset ends the old sessions"
    );
}

/// Revocations, audit events and the change feed's versions: what any revocation writes.
async fn footprint(app: &TestApp) -> [i64; 3] {
    [
        app.db.scalar("select count(*) from revocation").await,
        app.db.scalar("select count(*) from audit_event").await,
        app.db
            .scalar("select cast(sum(version) as bigint) from change_feed")
            .await,
    ]
}

/// Revocation is idempotent: 1,000 revocations of one token write once.
async fn repeated_revocations_write_nothing_after_the_first(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let w = world(&app).await;
    let (access, refresh_token) = tokens(&app, &w).await;
    let client = (w.client.0.as_str(), w.client.1.as_str());
    for token in [&access, &refresh_token] {
        let response = form(&app, "/revoke", client, &[("token", token)]).await;
        assert_eq!(response.status(), 200);
    }
    let session_id = token_sid(&access);
    let before = footprint(&app).await;
    for i in 0..1_000 {
        let token = if i % 2 == 0 { &access } else { &refresh_token };
        let response = form(&app, "/revoke", client, &[("token", token)]).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.json::<Value>().await.unwrap(), json!({}));
    }
    // The admin selector of a revoked session too.
    for _ in 0..2 {
        let response = form(&app, "/revoke", ADMIN, &[("session_id", &session_id)]).await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.json::<Value>().await.unwrap()["sessions_revoked"],
            0
        );
    }
    assert_eq!(footprint(&app).await, before);
    assert!(!active(&app, &w, &access).await);
}

/// The `sid` of an access token, read from its payload.
fn token_sid(token: &str) -> String {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    claims["sid"].as_str().unwrap().to_owned()
}

/// `subject=` is the exact `sub`, never a username; `username=` offboards by name.
async fn subject_is_the_exact_sub_and_username_selects_by_name(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let w = world(&app).await;
    let (access, _) = tokens(&app, &w).await;
    // A username given as `subject` is a `sub` nobody has: alice keeps her tokens.
    let response = form(&app, "/revoke", ADMIN, &[("subject", "alice")]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"selector": "subject", "value": "alice", "sessions_revoked": 0, "disabled": false})
    );
    assert!(active(&app, &w, &access).await);
    // Not a user, so nothing to disable.
    let response = form(
        &app,
        "/revoke",
        ADMIN,
        &[("subject", "alice"), ("disable", "true")],
    )
    .await;
    assert_error(response, 404, "not_found").await;
    let response = form(&app, "/revoke", ADMIN, &[("username", "nobody")]).await;
    assert_error(response, 404, "not_found").await;
    assert!(active(&app, &w, &access).await);
    // Two selectors at once are refused.
    let response = form(
        &app,
        "/revoke",
        ADMIN,
        &[("username", "alice"), ("subject", &w.user)],
    )
    .await;
    assert_error(response, 400, "invalid_request").await;
    // By username: alice's own `sub` is cut off.
    let response = form(&app, "/revoke", ADMIN, &[("username", "alice")]).await;
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"selector": "username", "value": "alice", "sessions_revoked": 1, "disabled": false})
    );
    assert!(!active(&app, &w, &access).await);
    // By the exact `sub`: the user id.
    app.clock.advance(time::Duration::seconds(1));
    let (access, _) = tokens(&app, &w).await;
    assert!(active(&app, &w, &access).await);
    let response = form(&app, "/revoke", ADMIN, &[("subject", &w.user)]).await;
    assert_eq!(
        response.json::<Value>().await.unwrap()["sessions_revoked"],
        1
    );
    assert!(!active(&app, &w, &access).await);
}

/// A client_credentials token of the client `w.introspector`.
async fn service_token(app: &TestApp, w: &World) -> String {
    let (id, secret) = &w.introspector;
    let response = app
        .token(Some((id, secret)), &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// A cut-off divides one second: the client's token from before the revocation is inactive,
/// the one it fetches at once afterwards, in the same second, is live.
async fn a_client_reauthenticating_at_once_gets_a_live_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let w = world(&app).await;
    let step = time::Duration::milliseconds(200);
    let before = service_token(&app, &w).await;
    app.clock.advance(step);
    let response = form(&app, "/revoke", ADMIN, &[("client_id", &w.introspector.0)]).await;
    assert_eq!(response.status(), 200);
    app.clock.advance(step);
    let after = service_token(&app, &w).await;
    assert!(!active(&app, &w, &before).await);
    assert!(active(&app, &w, &after).await);
}

/// Logins racing `client_id=… disable=true`: no session of the client survives it.
async fn a_login_racing_a_client_revocation_leaves_no_session(backend: Backend) {
    let app = Arc::new(TestApp::spawn(backend).await);
    let _alice = world(&app).await;
    for round in 0..5 {
        let (id, secret) = app
            .create_client(json!({"grant_types": ["password"], "audiences": ["a"]}))
            .await;
        let client = (id.clone(), secret.unwrap());
        let barrier = Arc::new(tokio::sync::Barrier::new(9));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (app, barrier, client) = (Arc::clone(&app), Arc::clone(&barrier), client.clone());
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                app.token(
                    Some((&client.0, &client.1)),
                    &[
                        ("grant_type", "password"),
                        ("username", "alice"),
                        ("password", "alice's password"),
                    ],
                )
                .await
                .status()
            }));
        }
        barrier.wait().await;
        let response = form(
            &app,
            "/revoke",
            ADMIN,
            &[("client_id", &id), ("disable", "true")],
        )
        .await;
        assert_eq!(response.status(), 200);
        for task in tasks {
            let status = task.await.unwrap();
            // Eight logins from one address: past the per-source threshold they are throttled (429).
            assert!(matches!(status.as_u16(), 200 | 400 | 401 | 429), "{status}");
        }
        let live = app
            .db
            .scalar(&format!(
                "select count(*) from session where client_id = '{id}' and revoked_at is null"
            ))
            .await;
        assert_eq!(
            live, 0,
            "round {round}: a login outlived the client's revocation"
        );
    }
}

both_backends!(
    a_login_racing_a_client_revocation_leaves_no_session,
    a_client_reauthenticating_at_once_gets_a_live_token,
    subject_is_the_exact_sub_and_username_selects_by_name,
    repeated_revocations_write_nothing_after_the_first,
    disabling_or_resetting_a_user_kills_their_access_tokens,
    introspection_of_every_token_kind,
    rfc7009_token_revocation,
    offboarding_end_to_end,
    client_session_and_kid_selectors,
    the_audit_log_records_security_events_without_secrets,
);

/// Revoked on one instance, inactive on the other within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_on_one_postgres_instance_reaches_the_other_within_a_second() {
    let db = Arc::new(TestDb::new(Backend::Postgres).await);
    // Behind one load balancer, both instances are one issuer.
    let issuer = |s: tessera::config::Settings| s.set("issuer", "https://auth.example.test");
    let first = TestApp::spawn_on(Arc::clone(&db), issuer).await;
    let second = TestApp::spawn_on(Arc::clone(&db), issuer).await;
    let w = world(&first).await;
    let (access, _) = tokens(&first, &w).await;
    let seen = eventually(Duration::from_secs(1), || async {
        let (id, secret) = &w.introspector;
        form(&second, "/introspect", (id, secret), &[("token", &access)])
            .await
            .status()
            == 200
    })
    .await;
    assert!(
        seen,
        "the second instance did not learn the introspecting client"
    );
    assert!(active(&second, &w, &access).await);
    assert_eq!(
        form(
            &first,
            "/revoke",
            (&w.client.0, &w.client.1),
            &[("token", &access)]
        )
        .await
        .status(),
        200
    );
    let gone = eventually(Duration::from_secs(1), || async {
        !active(&second, &w, &access).await
    })
    .await;
    assert!(gone, "still active on the second instance after 1 s");
}

/// A burst of change notifications costs each instance one sync pass, not one per notification.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_notifications_is_coalesced_into_one_sync() {
    const BURST: i64 = 500;
    let app = TestApp::spawn(Backend::Postgres).await;
    let notify = |n: i64| {
        format!(
            "select count(pg_notify('{}', 'burst-' || g)) from generate_series(1, {n}) g",
            tessera::store::CHANGE_CHANNEL
        )
    };
    // Wait until the instance listens: a notification then triggers a pass.
    let listening = eventually(Duration::from_secs(10), || async {
        let before = app.issuer.sync_passes();
        app.db.scalar(&notify(1)).await;
        eventually(Duration::from_millis(200), || async {
            app.issuer.sync_passes() > before
        })
        .await
    })
    .await;
    assert!(listening, "the instance never reacted to a notification");
    let before = app.issuer.sync_passes();
    // Distinct payloads in one transaction: all delivered together at its commit.
    assert_eq!(app.db.scalar(&notify(BURST)).await, BURST);
    assert!(
        eventually(Duration::from_secs(5), || async {
            app.issuer.sync_passes() > before
        })
        .await
    );
    // Let the instance work through whatever it queued.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let passes = app.issuer.sync_passes() - before;
    // A pass or two for the burst, plus the periodic ones (every 500 ms).
    assert!(
        passes <= 10,
        "{passes} sync passes for {BURST} notifications"
    );
}

/// `disable=true` on one instance: a client_credentials token the other instance mints before
/// it learns of the disable is inactive all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_clients_late_tokens_from_another_instance_are_inactive() {
    let db = Arc::new(TestDb::new(Backend::Postgres).await);
    let issuer = |s: tessera::config::Settings| s.set("issuer", "https://auth.example.test");
    let first = TestApp::spawn_on(Arc::clone(&db), issuer).await;
    let second = TestApp::spawn_on(Arc::clone(&db), issuer).await;
    let w = world(&first).await;
    let mut late = 0;
    for _ in 0..20 {
        let (id, secret) = first
            .create_client(json!({"grant_types": ["client_credentials"], "audiences": ["a"]}))
            .await;
        let secret = secret.unwrap();
        let grant = || async {
            second
                .token(
                    Some((&id, &secret)),
                    &[("grant_type", "client_credentials")],
                )
                .await
        };
        assert!(
            eventually(Duration::from_secs(5), || async {
                grant().await.status() == 200
            })
            .await
        );
        let response = form(
            &first,
            "/revoke",
            ADMIN,
            &[("client_id", &id), ("disable", "true")],
        )
        .await;
        assert_eq!(response.status(), 200);
        let response = grant().await;
        if response.status() == 200 {
            late += 1;
            let body: Value = response.json().await.unwrap();
            let token = body["access_token"].as_str().unwrap();
            assert!(!active(&first, &w, token).await, "a late token is active");
        }
    }
    eprintln!("{late} of 20 tokens minted after the disable by the other instance");
}
