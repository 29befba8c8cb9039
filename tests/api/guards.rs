//! The guards of issue 12 that hold at the edge and under races: repeated JSON members, key
//! rotation's 409, cross-site requests, bounded staleness of revocations and the last admin.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use std::sync::Arc;
use std::time::Duration;

use crate::helpers::{Backend, TestApp, TestDb, assert_error, eventually};

/// A password login of a new user with a standard client: (client, refresh token).
async fn login(app: &TestApp) -> ((String, String), String) {
    let (id, secret) = app.standard_client().await;
    app.create_user("grace", "grace's password").await;
    let body: Value = app
        .token(
            Some((&id, &secret)),
            &[
                ("grant_type", "password"),
                ("username", "grace"),
                ("password", "grace's password"),
            ],
        )
        .await
        .json()
        .await
        .unwrap();
    let token = body["refresh_token"].as_str().unwrap().to_owned();
    ((id, secret), token)
}

async fn refresh_json(app: &TestApp, client: &(String, String), body: String) -> reqwest::Response {
    app.request(Method::POST, "/refresh")
        .basic_auth(&client.0, Some(&client.1))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn a_repeated_json_member_in_refresh_is_invalid_request(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (client, token) = login(&app).await;
    // Which of two values counts differs between JSON readers: neither may be picked.
    for body in [
        format!(r#"{{"refresh_token":"{token}","refresh_token":"tsr_other"}}"#),
        format!(r#"{{"refresh_token":"tsr_other","refresh_token":"{token}"}}"#),
        format!(r#"{{"refresh_token":"{token}","refresh_token":"{token}"}}"#),
        format!(r#"{{"refresh_token":"{token}","scope":"read","scope":"read write"}}"#),
    ] {
        let refused = assert_error(
            refresh_json(&app, &client, body).await,
            400,
            "invalid_request",
        )
        .await;
        let text = refused.to_string();
        assert!(text.contains("repeated"), "{text}");
        assert!(!text.contains(&token), "no value is echoed: {text}");
    }
    // Nothing was used up: the token still rotates, once.
    let response = refresh_json(&app, &client, json!({"refresh_token": token}).to_string()).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "{}",
        response.text().await.unwrap()
    );
}

async fn rotate(app: &TestApp, body: Option<&str>) -> reqwest::Response {
    let mut request = app.admin(Method::POST, "/admin/keys/rotate");
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_owned());
    }
    request.send().await.unwrap()
}

async fn next_kid(app: &TestApp) -> String {
    let listed: Value = app.admin_get("/admin/keys").await.json().await.unwrap();
    listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["state"] == "next")
        .unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn key_rotation_too_soon_says_when_and_can_be_forced(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // The next key was published at start-up; the JWKS max-age is 300 s.
    let retry_after = |response: &reqwest::Response| -> u64 {
        response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    let early = rotate(&app, None).await;
    assert_eq!(retry_after(&early), 300);
    assert_error(early, 409, "conflict").await;
    app.clock.advance(time::Duration::milliseconds(100_500));
    let later = rotate(&app, Some(r#"{"force": false}"#)).await;
    // Rounded up: retrying after it finds the key ready.
    assert_eq!(retry_after(&later), 200);
    assert_error(later, 409, "conflict").await;
    // The documented body is nullable: JSON `null` is no options, so not forced.
    assert_error(rotate(&app, Some("null")).await, 409, "conflict").await;

    // Bad bodies are refused and rotate nothing.
    let next = next_kid(&app).await;
    for body in [
        r#"{"force": tru"#,
        r#"{"force": "yes"}"#,
        r#"{"force": true, "now": true}"#,
        "[]",
    ] {
        assert_error(rotate(&app, Some(body)).await, 400, "invalid_request").await;
    }
    let not_json = app
        .admin(Method::POST, "/admin/keys/rotate")
        .header("content-type", "text/plain")
        .body("force")
        .send()
        .await
        .unwrap();
    assert_error(not_json, 400, "invalid_request").await;
    assert_eq!(next_kid(&app).await, next);

    let forced = rotate(&app, Some(r#"{"force": true}"#)).await;
    assert_eq!(forced.status(), StatusCode::OK);
    let forced: Value = forced.json().await.unwrap();
    assert_eq!(forced["kid"], next.as_str());

    // An empty body still rotates once the next key has been published long enough.
    let next = next_kid(&app).await;
    app.clock.advance(time::Duration::seconds(300));
    let rotated = rotate(&app, None).await;
    assert_eq!(rotated.status(), StatusCode::OK);
    let rotated: Value = rotated.json().await.unwrap();
    assert_eq!(rotated["kid"], next.as_str());
}

/// A client allowed to introspect, and an access token of its own.
async fn introspector(app: &TestApp) -> ((String, String), String) {
    let (id, secret) = app
        .create_client(json!({
            "grant_types": ["client_credentials"],
            "audiences": ["https://api.example.com"],
            "introspect": true,
        }))
        .await;
    let secret = secret.unwrap();
    let body: Value = app
        .token(
            Some((&id, &secret)),
            &[("grant_type", "client_credentials")],
        )
        .await
        .json()
        .await
        .unwrap();
    (
        (id, secret),
        body["access_token"].as_str().unwrap().to_owned(),
    )
}

async fn introspect(app: &TestApp, client: &(String, String), token: &str) -> reqwest::Response {
    app.request(Method::POST, "/introspect")
        .basic_auth(&client.0, Some(&client.1))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
}

async fn active(response: reqwest::Response) -> bool {
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    body["active"].as_bool().unwrap()
}

async fn a_stale_revocation_state_answers_503_until_it_is_fresh_again(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (client, token) = introspector(&app).await;
    assert!(active(introspect(&app, &client, &token).await).await);

    // The revocation reads fail while the rest of the database answers: the sync cannot
    // refresh the revocation state, though the database pings fine.
    app.db
        .execute("alter table revocation rename to revocation_away")
        .await;
    // Within TESSERA_REVOCATION_MAX_STALENESS (30 s), memory still answers.
    app.clock.advance(time::Duration::seconds(30));
    assert!(active(introspect(&app, &client, &token).await).await);
    assert_eq!(
        app.get("/readyz").send().await.unwrap().status(),
        StatusCode::OK
    );
    // Past it, this instance vouches for nothing.
    app.clock.advance(time::Duration::seconds(1));
    let refused = introspect(&app, &client, &token).await;
    assert!(refused.headers().contains_key("retry-after"));
    assert_error(refused, 503, "temporarily_unavailable").await;
    assert_error(
        app.get("/readyz").send().await.unwrap(),
        503,
        "temporarily_unavailable",
    )
    .await;
    // Liveness is not readiness.
    assert_eq!(
        app.get("/healthz").send().await.unwrap().status(),
        StatusCode::OK
    );

    // Once the state can be refreshed, it is fresh again: no restart.
    app.db
        .execute("alter table revocation_away rename to revocation")
        .await;
    assert!(active(introspect(&app, &client, &token).await).await);
    assert_eq!(
        app.get("/readyz").send().await.unwrap().status(),
        StatusCode::OK
    );
}

/// PostgreSQL only: the database unreachable from this instance altogether.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_instance_stops_vouching_for_tokens() {
    let db = Arc::new(TestDb::new(Backend::Postgres).await);
    let app = TestApp::spawn_on(db, |s| s.set("database_acquire_timeout", "1")).await;
    let (client, token) = introspector(&app).await;
    assert!(active(introspect(&app, &client, &token).await).await);

    app.db.cut_connections().await;
    // Memory answers introspection without the database, within the limit...
    assert!(active(introspect(&app, &client, &token).await).await);
    // ...and not past it.
    app.clock.advance(time::Duration::seconds(31));
    assert_error(
        introspect(&app, &client, &token).await,
        503,
        "temporarily_unavailable",
    )
    .await;

    app.db.restore_connections().await;
    let recovered = eventually(Duration::from_secs(15), || async {
        introspect(&app, &client, &token).await.status() == StatusCode::OK
    })
    .await;
    assert!(
        recovered,
        "introspection did not recover after the database came back"
    );
    assert!(active(introspect(&app, &client, &token).await).await);
}

async fn enabled_admins(db: &TestDb) -> i64 {
    db.scalar("select count(*) from client where is_admin and not disabled")
        .await
}

async fn two_admins_disabling_each_other_leave_one_enabled(backend: Backend) {
    const ROUNDS: usize = 25;
    let app = TestApp::spawn(backend).await;
    let admin = || async {
        let (id, secret) = app
            .create_client(json!({
                "grant_types": ["client_credentials"],
                "audiences": ["https://api.example.com"],
                "admin": true,
            }))
            .await;
        (id, secret.unwrap())
    };
    let (a, b) = (admin().await, admin().await);
    let patch = |by: &(String, String), target: &str, disabled: bool| {
        app.request(Method::PATCH, &format!("/admin/clients/{target}"))
            .basic_auth(&by.0, Some(&by.1))
            .json(&json!({ "disabled": disabled }))
    };
    // The bootstrap admin goes: a and b are the last two enabled admins.
    let response = patch(&a, crate::helpers::ADMIN_ID, true)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(enabled_admins(&app.db).await, 2);

    let revoke = |by: &(String, String), target: &str| {
        app.request(Method::POST, "/revoke")
            .basic_auth(&by.0, Some(&by.1))
            .form(&[("client_id", target), ("disable", "true")])
    };
    for round in 0..ROUNDS {
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        // PATCH /admin/clients/{id} and POST /revoke client_id=… disable=true, in turn.
        let requests = if round % 2 == 0 {
            [patch(&a, &b.0, true), patch(&b, &a.0, true)]
        } else {
            [revoke(&a, &b.0), revoke(&b, &a.0)]
        };
        let tasks = requests.map(|request| {
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                barrier.wait().await;
                request.send().await.unwrap().status()
            })
        });
        let mut statuses = Vec::new();
        for task in tasks {
            statuses.push(task.await.unwrap());
        }
        let succeeded: Vec<usize> = (0..2).filter(|&i| statuses[i] == StatusCode::OK).collect();
        assert!(
            succeeded.len() <= 1,
            "round {round}: both disabled the other: {statuses:?}"
        );
        assert_eq!(
            enabled_admins(&app.db).await,
            1,
            "round {round}: {statuses:?}"
        );
        for (i, status) in statuses.iter().enumerate() {
            // The loser is refused (409), or finds its own credentials disabled already (401).
            assert!(
                *status == StatusCode::OK
                    || *status == StatusCode::CONFLICT
                    || *status == StatusCode::UNAUTHORIZED,
                "round {round}, request {i}: {status}"
            );
        }
        // The survivor enables the other again for the next round.
        let (survivor, disabled) = if succeeded == [0] { (&a, &b) } else { (&b, &a) };
        let response = patch(survivor, &disabled.0, false).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "round {round}");
        assert_eq!(enabled_admins(&app.db).await, 2);
    }

    // Disable b; a, the last one, cannot be disabled by anyone, the CLI's path included.
    let response = revoke(&a, &b.0).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let refused = app
        .issuer
        .set_client_disabled("operator", &a.0, true, None)
        .await
        .unwrap_err();
    assert!(
        matches!(refused, tessera::domain::Error::Conflict(_)),
        "{refused:?}"
    );
    assert_eq!(enabled_admins(&app.db).await, 1);
}

both_backends!(
    a_repeated_json_member_in_refresh_is_invalid_request,
    key_rotation_too_soon_says_when_and_can_be_forced,
    cross_site_state_changes_to_admin_and_revoke_are_refused,
    a_stale_revocation_state_answers_503_until_it_is_fresh_again,
    two_admins_disabling_each_other_leave_one_enabled,
);

async fn cross_site_state_changes_to_admin_and_revoke_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // No configured issuer: it is http:// + the bound address.
    let own_origin = app.url.clone();
    let create = |headers: &[(&str, &str)]| {
        let mut request = app.admin(Method::POST, "/admin/users").json(
            &json!({"username": uuid::Uuid::new_v4().to_string(), "password": "a long password"}),
        );
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send()
    };
    for refused in [
        vec![("sec-fetch-site", "cross-site")],
        vec![("origin", "https://evil.example")],
        vec![("origin", "null")],
        vec![
            ("sec-fetch-site", "same-site"),
            ("origin", "https://evil.example"),
        ],
        vec![
            ("sec-fetch-site", "cross-site"),
            ("origin", own_origin.as_str()),
        ],
    ] {
        let body = assert_error(create(&refused).await.unwrap(), 403, "access_denied").await;
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("cross-site"),
            "{body}"
        );
    }
    for passed in [
        vec![],
        vec![("sec-fetch-site", "same-origin")],
        vec![("sec-fetch-site", "same-site")],
        vec![("sec-fetch-site", "none")],
        vec![("origin", own_origin.as_str())],
        vec![
            ("sec-fetch-site", "same-origin"),
            ("origin", own_origin.as_str()),
        ],
    ] {
        let response = create(&passed).await.unwrap();
        assert_eq!(response.status(), StatusCode::CREATED, "{passed:?}");
    }
    // Nothing the refused requests asked for happened: only the passed ones made users.
    assert_eq!(app.db.scalar("select count(*) from user_account").await, 6);

    // Every state-changing method on the admin API, and POST /revoke.
    let (client_id, _) = app.standard_client().await;
    let evil = [("origin", "https://evil.example")];
    let requests = [
        app.admin(Method::PATCH, &format!("/admin/clients/{client_id}"))
            .json(&json!({"disabled": true})),
        app.admin(Method::POST, &format!("/admin/clients/{client_id}/secret")),
        app.admin(Method::POST, "/admin/keys/rotate")
            .json(&json!({"force": true})),
        app.admin(Method::DELETE, "/admin/clients"),
        app.admin(Method::PUT, "/admin/clients"),
        app.admin(Method::POST, "/revoke")
            .form(&[("client_id", client_id.as_str()), ("disable", "true")]),
    ];
    for request in requests {
        let response = request.header(evil[0].0, evil[0].1).send().await.unwrap();
        assert_error(response, 403, "access_denied").await;
    }
    let client: Value = app
        .admin_get(&format!("/admin/clients/{client_id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(client["disabled"], false, "{client}");
    // Reading stays open to any origin, and other endpoints are not guarded.
    let read = app
        .admin(Method::GET, "/admin/keys")
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    let token = app
        .request(Method::POST, "/token")
        .basic_auth(crate::helpers::ADMIN_ID, Some(crate::helpers::ADMIN_SECRET))
        .header("sec-fetch-site", "cross-site")
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), StatusCode::OK);
    // A same-origin revocation passes.
    let revoked = app
        .admin(Method::POST, "/revoke")
        .header("origin", own_origin.as_str())
        .form(&[("client_id", client_id.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::OK);
}
