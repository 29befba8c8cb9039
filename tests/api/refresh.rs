//! Rotating refresh tokens: the chain, the retry window, reuse detection, races, expiry,
//! scope, other clients and disabled users.

use std::sync::Arc;

use futures_free::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, TestApp, TestDb, assert_error};

/// A tiny join_all, so the suite needs no futures crate.
mod futures_free {
    pub async fn join_all<T>(handles: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
        let mut out = Vec::with_capacity(handles.len());
        for handle in handles {
            out.push(handle.await.unwrap());
        }
        out
    }
}

struct Login {
    client: (String, String),
    refresh_token: String,
    access_token: String,
}

async fn login(app: &TestApp) -> Login {
    let (id, secret) = app.standard_client().await;
    app.create_user("ivan", "ivan's password").await;
    let body: Value = app
        .token(
            Some((&id, &secret)),
            &[
                ("grant_type", "password"),
                ("username", "ivan"),
                ("password", "ivan's password"),
            ],
        )
        .await
        .json()
        .await
        .unwrap();
    Login {
        refresh_token: body["refresh_token"]
            .as_str()
            .expect("a refresh token with the password grant")
            .to_owned(),
        access_token: body["access_token"].as_str().unwrap().to_owned(),
        client: (id, secret),
    }
}

async fn refresh(app: &TestApp, client: &(String, String), token: &str) -> reqwest::Response {
    app.token(
        Some((&client.0, &client.1)),
        &[("grant_type", "refresh_token"), ("refresh_token", token)],
    )
    .await
}

async fn refreshed(response: reqwest::Response) -> Value {
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body["refresh_token"].as_str().unwrap().starts_with("tsr_"));
    body
}

fn sid(access_token: &str) -> String {
    use base64::Engine;
    let part = access_token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap();
    claims["sid"].as_str().unwrap().to_owned()
}

async fn live_tokens(db: &TestDb, session: &str) -> i64 {
    db.scalar(&format!(
        "select count(*) from refresh_token where session_id = '{session}' and consumed_at is null and revoked_at is null"
    ))
    .await
}

async fn a_chain_of_100_refreshes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let login = login(&app).await;
    let session = sid(&login.access_token);
    let mut token = login.refresh_token.clone();
    for _ in 0..100 {
        let body = refreshed(refresh(&app, &login.client, &token).await).await;
        assert_eq!(
            sid(body["access_token"].as_str().unwrap()),
            session,
            "every token of the chain carries the sid"
        );
        assert_ne!(body["refresh_token"], token.as_str());
        token = body["refresh_token"].as_str().unwrap().to_owned();
    }
    assert_eq!(
        live_tokens(&app.db, &session).await,
        1,
        "one live token per session"
    );
    assert_eq!(
        app.db
            .scalar(&format!(
                "select count(*) from refresh_token where session_id = '{session}'"
            ))
            .await,
        101
    );
}

async fn post_refresh_takes_json_or_a_form(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let login = login(&app).await;
    let (id, secret) = login.client.clone();
    let response = app
        .request(reqwest::Method::POST, "/refresh")
        .basic_auth(&id, Some(&secret))
        .json(&json!({"refresh_token": login.refresh_token}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body = refreshed(response).await;
    let response = app
        .request(reqwest::Method::POST, "/refresh")
        .basic_auth(&id, Some(&secret))
        .form(&[("refresh_token", body["refresh_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    refreshed(response).await;
    let missing = app
        .request(reqwest::Method::POST, "/refresh")
        .basic_auth(&id, Some(&secret))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_error(missing, 400, "invalid_request").await;
}

async fn a_retry_inside_the_window_gets_the_same_successor(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let login = login(&app).await;
    let first = refreshed(refresh(&app, &login.client, &login.refresh_token).await).await;
    app.clock.advance(time::Duration::seconds(9));
    let retry = refreshed(refresh(&app, &login.client, &login.refresh_token).await).await;
    assert_eq!(
        retry["refresh_token"], first["refresh_token"],
        "the successor it already earned"
    );
    assert_ne!(
        retry["access_token"], first["access_token"],
        "with a fresh access token"
    );
    assert_eq!(live_tokens(&app.db, &sid(&login.access_token)).await, 1);
    // The successor still works.
    refreshed(
        refresh(
            &app,
            &login.client,
            first["refresh_token"].as_str().unwrap(),
        )
        .await,
    )
    .await;
}

async fn reuse_after_the_window_revokes_the_session(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let login = login(&app).await;
    let session = sid(&login.access_token);
    let next = refreshed(refresh(&app, &login.client, &login.refresh_token).await).await;
    app.clock.advance(time::Duration::seconds(11));
    assert_error(
        refresh(&app, &login.client, &login.refresh_token).await,
        400,
        "invalid_grant",
    )
    .await;
    // The whole family is dead: the successor no longer refreshes.
    assert_error(
        refresh(&app, &login.client, next["refresh_token"].as_str().unwrap()).await,
        400,
        "invalid_grant",
    )
    .await;
    assert_eq!(live_tokens(&app.db, &session).await, 0);
    let db = &app.db;
    assert_eq!(
        db.scalar(&format!(
            "select count(*) from session where session_id = '{session}' and revoked_at is not null"
        ))
        .await,
        1
    );
    // The access tokens carrying the sid are revoked too (the revocation state introspection reads).
    assert_eq!(
        db.scalar(&format!(
            "select count(*) from revocation where kind = 'session' and value = '{session}'"
        ))
        .await,
        1
    );
    assert_eq!(
        db.scalar(&format!(
            "select count(*) from audit_event where event_type = 'refresh_token_reuse_detected' and session_id = '{session}' and source_addr is not null"
        ))
        .await,
        1
    );
    let detail = db
        .scalar("select count(*) from audit_event where cast(detail as text) like '%tsr_%'")
        .await;
    assert_eq!(detail, 0, "no token in the audit log");
}

/// The `refresh` events of a session, as GET /admin/audit lists them.
async fn refresh_events(app: &TestApp, session: &str) -> Vec<Value> {
    let response = app.admin_get("/admin/audit?type=refresh&limit=100").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["session_id"] == session)
        .cloned()
        .collect()
}

async fn every_rotation_is_audited_once(backend: Backend) {
    let app = Arc::new(TestApp::spawn(backend).await);
    let login = login(&app).await;
    let session = sid(&login.access_token);
    // Eight presentations at once: one rotation, the others lose the race (retries).
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (app, client, token) = (
            Arc::clone(&app),
            login.client.clone(),
            login.refresh_token.clone(),
        );
        tasks.push(tokio::spawn(async move {
            refresh(&app, &client, &token).await.status()
        }));
    }
    let statuses = join_all(tasks).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    let events = refresh_events(&app, &session).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert_eq!(event["client_id"], login.client.0.as_str());
    assert_eq!(event["source_addr"], "127.0.0.1");
    assert_eq!(event["detail"], json!({ "scope": "read write" }));
    let access: Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            login.access_token.split('.').nth(1).unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        event["subject"], access["sub"],
        "the subject is the user id"
    );

    // Reuse after the window records its own event, and no `refresh` one.
    app.clock.advance(time::Duration::seconds(11));
    assert_error(
        refresh(&app, &login.client, &login.refresh_token).await,
        400,
        "invalid_grant",
    )
    .await;
    assert_eq!(refresh_events(&app, &session).await.len(), 1);
}

async fn a_retry_after_the_successor_was_used_is_reuse(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let login = login(&app).await;
    let next = refreshed(refresh(&app, &login.client, &login.refresh_token).await).await;
    let after =
        refreshed(refresh(&app, &login.client, next["refresh_token"].as_str().unwrap()).await)
            .await;
    // Inside the window, but the successor has been used: this is theft, not a retry.
    assert_error(
        refresh(&app, &login.client, &login.refresh_token).await,
        400,
        "invalid_grant",
    )
    .await;
    assert_error(
        refresh(
            &app,
            &login.client,
            after["refresh_token"].as_str().unwrap(),
        )
        .await,
        400,
        "invalid_grant",
    )
    .await;
}

async fn concurrent_refreshes_without_a_window(backend: Backend) {
    let db = Arc::new(TestDb::new(backend).await);
    let app = Arc::new(TestApp::spawn_on(db, |s| s.set("refresh_reuse_grace", "0")).await);
    let login = login(&app).await;
    let session = sid(&login.access_token);
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (app, client, token) = (
            Arc::clone(&app),
            login.client.clone(),
            login.refresh_token.clone(),
        );
        tasks.push(tokio::spawn(async move {
            refresh(&app, &client, &token).await.status()
        }));
    }
    let statuses = join_all(tasks).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::OK || *s == StatusCode::BAD_REQUEST),
        "{statuses:?}"
    );
    // The others were reuse: the session is revoked, the winner's successor with it.
    assert_eq!(live_tokens(&app.db, &session).await, 0);
}

/// Moves `app`'s clock forward a millisecond at a time, as a real clock moves under concurrent
/// requests, until the returned guard is dropped.
struct Ticking(
    Arc<std::sync::atomic::AtomicBool>,
    Option<std::thread::JoinHandle<()>>,
);

impl Ticking {
    fn start(clock: Arc<tessera::clock::MockClock>) -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                clock.advance(time::Duration::milliseconds(1));
                std::thread::yield_now();
            }
        });
        Self(stop, Some(thread))
    }
}

impl Drop for Ticking {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.1.take() {
            let _ = thread.join();
        }
    }
}

/// Grace 0 has no window: of a burst of presentations of one token, exactly one rotates and
/// every other one is reuse, which revokes the session; never a second 200, whatever the order
/// in which the requests read the clock.
async fn grace_zero_answers_one_burst_once(backend: Backend) {
    let db = Arc::new(TestDb::new(backend).await);
    let app = Arc::new(TestApp::spawn_on(db, |s| s.set("refresh_reuse_grace", "0")).await);
    let login = login(&app).await;
    let mut token = login.refresh_token.clone();
    let mut session = sid(&login.access_token);
    for round in 0..30 {
        if round > 0 {
            let body: Value = app
                .token(
                    Some((&login.client.0, &login.client.1)),
                    &[
                        ("grant_type", "password"),
                        ("username", "ivan"),
                        ("password", "ivan's password"),
                    ],
                )
                .await
                .json()
                .await
                .unwrap();
            token = body["refresh_token"].as_str().unwrap().to_owned();
            session = sid(body["access_token"].as_str().unwrap());
        }
        let ticking = Ticking::start(Arc::clone(&app.clock));
        let barrier = Arc::new(tokio::sync::Barrier::new(8));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (app, client, token, barrier) = (
                Arc::clone(&app),
                login.client.clone(),
                token.clone(),
                Arc::clone(&barrier),
            );
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                refresh(&app, &client, &token).await.status()
            }));
        }
        let statuses = join_all(tasks).await;
        drop(ticking);
        let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
        assert_eq!(ok, 1, "round {round}: {statuses:?}");
        assert!(
            statuses
                .iter()
                .all(|s| *s == StatusCode::OK || *s == StatusCode::BAD_REQUEST),
            "round {round}: {statuses:?}"
        );
        // The other seven presented a consumed token: reuse, the session is revoked.
        assert_eq!(
            app.db
                .scalar(&format!(
                    "select count(*) from session where session_id = '{session}' and revoked_at is not null"
                ))
                .await,
            1,
            "round {round}"
        );
        assert_eq!(live_tokens(&app.db, &session).await, 0);
        // One rotation, one `refresh` event.
        assert_eq!(
            app.db
                .scalar(&format!(
                    "select count(*) from audit_event where event_type = 'refresh' and session_id = '{session}'"
                ))
                .await,
            1,
            "round {round}"
        );
        // Grace 0 keeps no sealed successor.
        assert_eq!(
            app.db
                .scalar(&format!(
                    "select count(*) from refresh_token where session_id = '{session}' and successor_ciphertext is not null"
                ))
                .await,
            0,
            "round {round}"
        );
    }
}

async fn concurrent_refreshes_inside_the_window(backend: Backend) {
    let app = Arc::new(TestApp::spawn(backend).await);
    let login = login(&app).await;
    let session = sid(&login.access_token);
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (app, client, token) = (
            Arc::clone(&app),
            login.client.clone(),
            login.refresh_token.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let response = refresh(&app, &client, &token).await;
            let status = response.status();
            (status, response.json::<Value>().await.unwrap())
        }));
    }
    let answers = join_all(tasks).await;
    let successors: Vec<_> = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::OK)
        .map(|(_, b)| b["refresh_token"].clone())
        .collect();
    assert_eq!(successors.len(), 16, "{answers:?}");
    assert!(
        successors.iter().all(|s| *s == successors[0]),
        "every 200 carries the same successor"
    );
    assert_eq!(
        live_tokens(&app.db, &session).await,
        1,
        "exactly one live token afterwards"
    );
}

async fn idle_and_absolute_expiry(backend: Backend) {
    let db = Arc::new(TestDb::new(backend).await);
    let app = TestApp::spawn_on(db, |s| {
        s.set("refresh_token_idle_ttl", "3600")
            .set("refresh_token_absolute_ttl", "7200")
    })
    .await;
    let login = login(&app).await;
    // Idle: unused for an hour.
    app.clock.advance(time::Duration::seconds(3599));
    let next = refreshed(refresh(&app, &login.client, &login.refresh_token).await).await;
    let token = next["refresh_token"].as_str().unwrap().to_owned();
    app.clock.advance(time::Duration::seconds(3600));
    assert_error(
        refresh(&app, &login.client, &token).await,
        400,
        "invalid_grant",
    )
    .await;

    // Absolute: rotation never extends the session past its age.
    let body: Value = app
        .token(
            Some((&login.client.0, &login.client.1)),
            &[
                ("grant_type", "password"),
                ("username", "ivan"),
                ("password", "ivan's password"),
            ],
        )
        .await
        .json()
        .await
        .unwrap();
    let mut token = body["refresh_token"].as_str().unwrap().to_owned();
    for _ in 0..3 {
        app.clock.advance(time::Duration::seconds(2000));
        let next = refreshed(refresh(&app, &login.client, &token).await).await;
        token = next["refresh_token"].as_str().unwrap().to_owned();
    }
    app.clock.advance(time::Duration::seconds(1201));
    assert_error(
        refresh(&app, &login.client, &token).await,
        400,
        "invalid_grant",
    )
    .await;
}

async fn another_clients_token_is_refused_and_left_alone(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let login = login(&app).await;
    let (other, other_secret) = app.standard_client().await;
    assert_error(
        refresh(&app, &(other, other_secret.clone()), &login.refresh_token).await,
        400,
        "invalid_grant",
    )
    .await;
    // Nothing changed: its own client still refreshes it.
    refreshed(refresh(&app, &login.client, &login.refresh_token).await).await;
    // A client without the refresh_token grant.
    let (narrow, narrow_secret) = app
        .create_client(json!({"grant_types": ["client_credentials"], "audiences": ["a"]}))
        .await;
    assert_error(
        refresh(
            &app,
            &(narrow, narrow_secret.unwrap()),
            &login.refresh_token,
        )
        .await,
        400,
        "unauthorized_client",
    )
    .await;
    for junk in [
        "tsr_junk",
        "not a token",
        &format!("tsr_{}", "A".repeat(64)),
    ] {
        assert_error(
            refresh(&app, &login.client, junk).await,
            400,
            "invalid_grant",
        )
        .await;
    }
}

async fn a_disabled_user_can_no_longer_refresh(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let login = login(&app).await;
    let session = sid(&login.access_token);
    let user = app.db.scalar("select count(*) from user_account").await;
    assert_eq!(user, 1);
    let id = app.create_user("judy", "judy's password").await;
    let body: Value = app
        .token(
            Some((&login.client.0, &login.client.1)),
            &[
                ("grant_type", "password"),
                ("username", "judy"),
                ("password", "judy's password"),
            ],
        )
        .await
        .json()
        .await
        .unwrap();
    let judy_token = body["refresh_token"].as_str().unwrap().to_owned();
    let patch = app
        .admin(reqwest::Method::PATCH, &format!("/admin/users/{id}"))
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(patch.status(), 200);
    assert_error(
        refresh(&app, &login.client, &judy_token).await,
        400,
        "invalid_grant",
    )
    .await;
    // Re-enabling does not bring the revoked session back.
    app.admin(reqwest::Method::PATCH, &format!("/admin/users/{id}"))
        .json(&json!({"disabled": false}))
        .send()
        .await
        .unwrap();
    assert_error(
        refresh(&app, &login.client, &judy_token).await,
        400,
        "invalid_grant",
    )
    .await;
    // Ivan's session is untouched.
    assert_eq!(live_tokens(&app.db, &session).await, 1);
}

async fn scope_may_narrow_but_never_widen(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let login = login(&app).await;
    let grant = |token: String, scope: &'static str| {
        let (app, client) = (&app, login.client.clone());
        async move {
            app.token(
                Some((&client.0, &client.1)),
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &token),
                    ("scope", scope),
                ],
            )
            .await
        }
    };
    assert_error(
        grant(login.refresh_token.clone(), "read write admin").await,
        400,
        "invalid_scope",
    )
    .await;
    let narrowed = refreshed(grant(login.refresh_token.clone(), "read").await).await;
    assert_eq!(narrowed["scope"], "read");
    // A retry of the consumed token inside the window cannot undo the narrowing.
    let retried = refreshed(refresh(&app, &login.client, &login.refresh_token).await).await;
    assert_eq!(retried["refresh_token"], narrowed["refresh_token"]);
    assert_eq!(retried["scope"], "read");
    let token = narrowed["refresh_token"].as_str().unwrap().to_owned();
    // The successor keeps the narrowed scope: asking for write again is widening.
    assert_error(
        grant(token.clone(), "read write").await,
        400,
        "invalid_scope",
    )
    .await;
    let again = refreshed(refresh(&app, &login.client, &token).await).await;
    assert_eq!(again["scope"], "read");
}

async fn the_sealed_successor_is_erased_after_the_window(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let login = login(&app).await;
    let session = sid(&login.access_token);
    let first = refreshed(refresh(&app, &login.client, &login.refresh_token).await).await;
    let sealed = format!(
        "select count(*) from refresh_token where session_id = '{session}' and successor_ciphertext is not null"
    );
    assert_eq!(app.db.scalar(&sealed).await, 1);
    app.issuer.housekeeping().await.unwrap();
    assert_eq!(
        app.db.scalar(&sealed).await,
        1,
        "kept while the window is open"
    );
    app.clock.advance(time::Duration::seconds(11));
    app.issuer.housekeeping().await.unwrap();
    assert_eq!(
        app.db.scalar(&sealed).await,
        0,
        "erased once the window has closed"
    );
    // In a chain, a rotation erases its predecessor's sealed copy at once, inside the window:
    // that successor is used now, so a retry of the predecessor is reuse and never gets it.
    let first_token = first["refresh_token"].as_str().unwrap().to_owned();
    let second = refreshed(refresh(&app, &login.client, &first_token).await).await;
    assert_eq!(app.db.scalar(&sealed).await, 1);
    let second_token = second["refresh_token"].as_str().unwrap().to_owned();
    refreshed(refresh(&app, &login.client, &second_token).await).await;
    assert_eq!(
        app.db.scalar(&sealed).await,
        1,
        "only the newest consumed token holds a sealed successor"
    );
    // No successor in clear anywhere in the database, ever.
    assert_eq!(
        app.db
            .scalar("select count(*) from refresh_token where scope like '%tsr_%'")
            .await,
        0
    );
}

both_backends!(
    a_chain_of_100_refreshes,
    post_refresh_takes_json_or_a_form,
    a_retry_inside_the_window_gets_the_same_successor,
    reuse_after_the_window_revokes_the_session,
    a_retry_after_the_successor_was_used_is_reuse,
    every_rotation_is_audited_once,
    concurrent_refreshes_without_a_window,
    grace_zero_answers_one_burst_once,
    concurrent_refreshes_inside_the_window,
    idle_and_absolute_expiry,
    another_clients_token_is_refused_and_left_alone,
    a_disabled_user_can_no_longer_refresh,
    scope_may_narrow_but_never_widen,
    the_sealed_successor_is_erased_after_the_window,
);
