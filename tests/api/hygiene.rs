//! Client credential hygiene: rotation with overlap, secret expiry, recorded use (batched,
//! flushed at shutdown, merged across instances), the list filters and the gauges.

use std::sync::Arc;

use reqwest::Method;
use serde_json::{Value, json};
use tessera::clock::Clock;
use time::Duration;
use time::format_description::well_known::Rfc3339;

use crate::both_backends;
use crate::helpers::{ADMIN_ID, ADMIN_SECRET, Backend, TestApp, TestDb, assert_error};

const GRANT: [(&str, &str); 1] = [("grant_type", "client_credentials")];

/// A confidential client_credentials client with scopes `read write`, and extra fields.
async fn workload(app: &TestApp, client_id: &str, extra: Value) -> String {
    let mut body = json!({
        "client_id": client_id,
        "grant_types": ["client_credentials", "password"],
        "scopes": ["read", "write"],
        "audiences": ["https://api.example.com"],
    });
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    app.create_client(body).await.1.unwrap()
}

async fn rotate(app: &TestApp, client_id: &str, body: Option<Value>) -> reqwest::Response {
    let request = app.admin(Method::POST, &format!("/admin/clients/{client_id}/secret"));
    match body {
        Some(body) => request.json(&body),
        None => request,
    }
    .send()
    .await
    .unwrap()
}

async fn rotated(app: &TestApp, client_id: &str, body: Option<Value>) -> Value {
    let response = rotate(app, client_id, body).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn details(app: &TestApp, client_id: &str) -> Value {
    let response = app.admin_get(&format!("/admin/clients/{client_id}")).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// The status of a client_credentials grant with these credentials.
async fn grant(app: &TestApp, client_id: &str, secret: &str) -> u16 {
    app.token(Some((client_id, secret)), &GRANT)
        .await
        .status()
        .as_u16()
}

fn at(app: &TestApp, offset: Duration) -> String {
    (app.clock.now() + offset).format(&Rfc3339).unwrap()
}

async fn the_old_secret_works_during_the_overlap_then_stops(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let old = workload(&app, "billing", json!({})).await;
    let new = rotated(&app, "billing", Some(json!({"previous_valid_for": 600}))).await;
    assert_eq!(
        new["previous_secret_expires_at"],
        at(&app, Duration::seconds(600))
    );
    let new = new["client_secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert_eq!(grant(&app, "billing", &old).await, 200);
    assert_eq!(grant(&app, "billing", &new).await, 200);
    assert_eq!(
        details(&app, "billing").await["previous_secret_expires_at"],
        at(&app, Duration::seconds(600))
    );

    app.clock.advance(Duration::seconds(599));
    assert_eq!(grant(&app, "billing", &old).await, 200);
    app.clock.advance(Duration::seconds(1));
    // Past the overlap the old secret is simply wrong: nothing says it once worked.
    let body = assert_error(
        app.token(Some(("billing", &old)), &GRANT).await,
        401,
        "invalid_client",
    )
    .await;
    assert_eq!(body["error_description"], "client authentication failed");
    assert_eq!(grant(&app, "billing", &new).await, 200);

    // Rotating again during an overlap replaces the previous secret: at most two work.
    let second = rotated(&app, "billing", Some(json!({"previous_valid_for": 600}))).await;
    let third = rotated(&app, "billing", Some(json!({"previous_valid_for": 600}))).await;
    assert_eq!(grant(&app, "billing", &new).await, 401);
    assert_eq!(
        grant(&app, "billing", second["client_secret"].as_str().unwrap()).await,
        200
    );
    assert_eq!(
        grant(&app, "billing", third["client_secret"].as_str().unwrap()).await,
        200
    );
}

/// The bootstrap admin's operator-chosen (argon2id) secret can be rolled with an overlap too:
/// the new one is generated, the old one works until the overlap ends.
async fn the_bootstrap_admin_rolls_its_chosen_secret_with_an_overlap(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let new = rotated(&app, ADMIN_ID, Some(json!({"previous_valid_for": 60}))).await;
    let new = new["client_secret"].as_str().unwrap().to_owned();
    assert!(new.starts_with("tss_"));
    let keys = |secret: &str| {
        app.get("/admin/keys")
            .basic_auth(ADMIN_ID, Some(secret))
            .send()
    };
    assert_eq!(keys(ADMIN_SECRET).await.unwrap().status(), 200);
    assert_eq!(keys(&new).await.unwrap().status(), 200);
    assert_eq!(keys("wrong-admin-secret-0123").await.unwrap().status(), 401);
    app.clock.advance(Duration::seconds(60));
    assert_eq!(keys(ADMIN_SECRET).await.unwrap().status(), 401);
    assert_eq!(keys(&new).await.unwrap().status(), 200);
}

async fn without_an_overlap_the_old_secret_stops_at_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let old = workload(&app, "billing", json!({})).await;
    let zero = rotated(&app, "billing", Some(json!({"previous_valid_for": 0}))).await;
    assert_eq!(zero["previous_secret_expires_at"], Value::Null);
    assert_eq!(grant(&app, "billing", &old).await, 401);
    let current = zero["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(grant(&app, "billing", &current).await, 200);
    // An empty body is no overlap too, and it also ends a running one.
    rotated(&app, "billing", Some(json!({"previous_valid_for": 600}))).await;
    let empty = rotated(&app, "billing", None).await;
    assert_eq!(grant(&app, "billing", &current).await, 401);
    assert_eq!(
        grant(&app, "billing", empty["client_secret"].as_str().unwrap()).await,
        200
    );
    assert_eq!(
        details(&app, "billing").await["previous_secret_expires_at"],
        Value::Null
    );
}

/// Two admins rotating at once: the later rotation keeps the earlier one's secret as its
/// previous one (read in the same statement), so no secret that was shown is lost.
async fn concurrent_rotations_lose_no_shown_secret(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let original = workload(&app, "billing", json!({})).await;
    let body = || Some(json!({"previous_valid_for": 600}));
    let (a, b) = tokio::join!(
        rotated(&app, "billing", body()),
        rotated(&app, "billing", body())
    );
    // Two syncs racing may briefly load the earlier state; the feed settles it within a pass.
    let both_work = crate::helpers::eventually(std::time::Duration::from_secs(3), || async {
        let a = grant(&app, "billing", a["client_secret"].as_str().unwrap()).await;
        let b = grant(&app, "billing", b["client_secret"].as_str().unwrap()).await;
        a == 200 && b == 200
    })
    .await;
    assert!(
        both_work,
        "each shown secret works: one current, one previous"
    );
    assert_eq!(grant(&app, "billing", &original).await, 401);
}

async fn a_bad_rotation_is_refused_naming_the_parameter_and_changes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let secret = workload(&app, "billing", json!({})).await;
    app.clock.advance(Duration::seconds(5));
    // What a refused rotation must leave alone (use may be flushed meanwhile: not compared).
    let secret_fields = |shown: Value| -> Vec<Value> {
        [
            "secret_created_at",
            "secret_expires_at",
            "secret_max_age",
            "previous_secret_expires_at",
            "updated_at",
        ]
        .iter()
        .map(|f| shown[*f].clone())
        .collect()
    };
    let before = secret_fields(details(&app, "billing").await);
    for (body, named) in [
        (json!({"previous_valid_for": -1}), "previous_valid_for"),
        (json!({"previous_valid_for": 604_801}), "previous_valid_for"),
        (json!({"previous_valid_for": "600"}), "previous_valid_for"),
        (json!({"previous_valid_for": 1.5}), "previous_valid_for"),
        (json!({"previous_valid_for": 1e30}), "previous_valid_for"),
        (
            json!({"previous_valid_for": 60, "secret_max_age": 59}),
            "secret_max_age",
        ),
        (
            json!({"previous_valid_for": 60, "secret_max_age": 4_294_967_296_i64}),
            "secret_max_age",
        ),
        (json!({"previous_valid_for": 60, "overlap": 60}), "overlap"),
    ] {
        let error = assert_error(
            rotate(&app, "billing", Some(body.clone())).await,
            400,
            "invalid_request",
        )
        .await;
        let text = error["error_description"].as_str().unwrap();
        assert!(text.contains(named), "{body}: {text}");
    }
    assert_eq!(secret_fields(details(&app, "billing").await), before);
    assert_eq!(grant(&app, "billing", &secret).await, 200);
    // The largest overlap is a week.
    let week = rotated(
        &app,
        "billing",
        Some(json!({"previous_valid_for": 604_800})),
    )
    .await;
    assert_eq!(
        week["previous_secret_expires_at"],
        at(&app, Duration::seconds(604_800))
    );

    // Registration checks its max age the same way.
    for body in [
        json!({"grant_types": ["client_credentials"], "audiences": ["a"], "secret_max_age": 0}),
        json!({"grant_types": ["client_credentials"], "audiences": ["a"], "secret_max_age": "1d"}),
        json!({"grant_types": ["password"], "audiences": ["a"], "public": true, "secret_max_age": 3600}),
    ] {
        let response = app
            .admin(Method::POST, "/admin/clients")
            .json(&body)
            .send()
            .await
            .unwrap();
        let error = assert_error(response, 400, "invalid_request").await;
        assert!(
            error["error_description"]
                .as_str()
                .unwrap()
                .contains("secret_max_age")
        );
    }
    let response = app
        .admin(Method::POST, "/admin/clients")
        .json(
            &json!({"grant_types": ["client_credentials"], "audiences": ["a"], "scopes": ["a b"]}),
        )
        .send()
        .await
        .unwrap();
    let error = assert_error(response, 400, "invalid_request").await;
    assert!(
        error["error_description"]
            .as_str()
            .unwrap()
            .contains("scopes")
    );
}

async fn secrets_expire_after_the_global_max_age(backend: Backend) {
    let db = Arc::new(TestDb::new(backend).await);
    let app = TestApp::spawn_on(db, |s| s.set("client_secret_max_age", "3600")).await;
    let secret = workload(&app, "billing", json!({})).await;
    let shown = details(&app, "billing").await;
    assert_eq!(shown["secret_created_at"], at(&app, Duration::ZERO));
    assert_eq!(
        shown["secret_expires_at"],
        at(&app, Duration::seconds(3600))
    );
    assert_eq!(shown["secret_max_age"], Value::Null);

    app.clock.advance(Duration::seconds(3000));
    // An overlap never outlives the old secret's own expiry.
    let new = rotated(&app, "billing", Some(json!({"previous_valid_for": 3600}))).await;
    assert_eq!(
        new["previous_secret_expires_at"],
        at(&app, Duration::seconds(600))
    );
    assert_eq!(new["secret_expires_at"], at(&app, Duration::seconds(3600)));
    let new = new["client_secret"].as_str().unwrap().to_owned();
    app.clock.advance(Duration::seconds(599));
    assert_eq!(grant(&app, "billing", &secret).await, 200);
    app.clock.advance(Duration::seconds(1));
    assert_eq!(grant(&app, "billing", &secret).await, 401);

    app.clock.advance(Duration::seconds(3000));
    let expired = assert_error(
        app.token(Some(("billing", &new)), &GRANT).await,
        401,
        "invalid_client",
    )
    .await;
    assert_eq!(expired["error_description"], "client secret expired");
    // A wrong secret learns nothing about expiry.
    let wrong = assert_error(
        app.token(Some(("billing", "tss_wrong")), &GRANT).await,
        401,
        "invalid_client",
    )
    .await;
    assert_eq!(wrong["error_description"], "client authentication failed");
    // The bootstrap admin's operator-chosen secret does not expire; it can roll the client.
    let again = rotated(&app, "billing", None).await;
    assert_eq!(
        grant(&app, "billing", again["client_secret"].as_str().unwrap()).await,
        200
    );
}

async fn a_clients_own_max_age_wins(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let short = workload(&app, "short", json!({"secret_max_age": 120})).await;
    let plain = workload(&app, "plain", json!({})).await;
    assert_eq!(details(&app, "short").await["secret_max_age"], 120);
    assert_eq!(
        details(&app, "plain").await["secret_expires_at"],
        Value::Null
    );
    app.clock.advance(Duration::seconds(119));
    assert_eq!(grant(&app, "short", &short).await, 200);
    app.clock.advance(Duration::seconds(1));
    let expired = assert_error(
        app.token(Some(("short", &short)), &GRANT).await,
        401,
        "invalid_client",
    )
    .await;
    assert_eq!(expired["error_description"], "client secret expired");
    assert_eq!(grant(&app, "plain", &plain).await, 200);
    // A rotation can set the max age; the new secret's clock starts now.
    let rolled = rotated(&app, "plain", Some(json!({"secret_max_age": 60}))).await;
    assert_eq!(rolled["secret_expires_at"], at(&app, Duration::seconds(60)));
    let rolled = rotated(&app, "short", None).await;
    assert_eq!(
        rolled["secret_expires_at"],
        at(&app, Duration::seconds(120))
    );
    assert_eq!(
        grant(&app, "short", rolled["client_secret"].as_str().unwrap()).await,
        200
    );
}

async fn use_is_recorded_in_batches_per_client_and_scope(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let secret = workload(&app, "billing", json!({})).await;
    app.create_user("alice", "correct horse battery").await;
    let started = at(&app, Duration::ZERO);
    let response = app
        .token(
            Some(("billing", &secret)),
            &[("grant_type", "client_credentials"), ("scope", "read")],
        )
        .await;
    assert_eq!(response.status(), 200);
    // No write per token: nothing is stored before a flush.
    let shown = details(&app, "billing").await;
    assert_eq!(shown["last_used_at"], Value::Null);
    assert_eq!(shown["scope_usage"], json!({"read": null, "write": null}));

    app.clock.advance(Duration::seconds(30));
    // A user's token counts for the client's scope too.
    let response = app
        .token(
            Some(("billing", &secret)),
            &[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", "correct horse battery"),
                ("scope", "write"),
            ],
        )
        .await;
    assert_eq!(response.status(), 200);
    app.issuer.flush_usage().await.unwrap();
    let shown = details(&app, "billing").await;
    assert_eq!(shown["last_used_at"], at(&app, Duration::ZERO));
    assert_eq!(
        shown["scope_usage"],
        json!({"read": started, "write": at(&app, Duration::ZERO)})
    );
    assert_eq!(
        app.issuer.flush_usage().await.unwrap(),
        1,
        "only the admin's GET since"
    );
}

async fn recorded_use_survives_a_graceful_restart(backend: Backend) {
    let db = Arc::new(TestDb::new(backend).await);
    let first = TestApp::spawn_on(Arc::clone(&db), |s| s).await;
    let secret = workload(&first, "billing", json!({})).await;
    first.clock.advance(Duration::seconds(10));
    assert_eq!(grant(&first, "billing", &secret).await, 200);
    let used = at(&first, Duration::ZERO);
    first.stop().await;
    let second = TestApp::spawn_on(db, |s| s).await;
    let shown = details(&second, "billing").await;
    assert_eq!(shown["last_used_at"], used);
    assert_eq!(shown["scope_usage"]["read"], used);
}

async fn instances_merge_use_and_the_latest_wins(backend: Backend) {
    let db = Arc::new(TestDb::new(backend).await);
    let one = TestApp::spawn_on(Arc::clone(&db), |s| s).await;
    let two = TestApp::spawn_on(Arc::clone(&db), |s| s).await;
    let secret = workload(&one, "billing", json!({})).await;
    // Each instance has its own clock: two is 100 s ahead.
    two.clock.set(one.clock.now() + Duration::seconds(100));
    let later = at(&two, Duration::ZERO);
    assert!(
        crate::helpers::eventually(std::time::Duration::from_secs(5), || async {
            grant(&two, "billing", &secret).await == 200
        })
        .await,
        "the second instance learns the client"
    );
    assert_eq!(grant(&one, "billing", &secret).await, 200);
    // The later use is flushed first; the earlier flush after it does not move it back.
    two.issuer.flush_usage().await.unwrap();
    one.issuer.flush_usage().await.unwrap();
    for app in [&one, &two] {
        let shown = details(app, "billing").await;
        assert_eq!(shown["last_used_at"], later);
        assert_eq!(shown["scope_usage"], json!({"read": later, "write": later}));
    }
}

async fn clients_are_listed_by_disuse_and_secret_age(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ids = |listed: Value| -> Vec<String> {
        listed["clients"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["client_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let list = |query: &'static str| {
        let app = &app;
        async move {
            let response = app.admin_get(&format!("/admin/clients{query}")).await;
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.unwrap()
        }
    };
    let old = workload(&app, "old", json!({})).await;
    workload(&app, "idle", json!({})).await;
    app.clock.advance(Duration::seconds(1000));
    workload(&app, "young", json!({})).await;
    assert_eq!(grant(&app, "old", &old).await, 200);
    app.issuer.flush_usage().await.unwrap();
    app.clock.advance(Duration::seconds(100));

    let all = list("").await;
    assert_eq!(ids(all.clone()), [ADMIN_ID, "idle", "old", "young"]);
    assert!(all["clients"][1]["scope_usage"].is_object());
    assert!(
        all["clients"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c.get("client_secret").is_none())
    );
    // Never used counts from creation; "old" was used 100 s ago.
    assert_eq!(ids(list("?unused_for=1000").await), ["idle"]);
    // At the cut-off counts: "old" and "young" (and the admin, which created "young") at 1000 s.
    assert_eq!(
        ids(list("?unused_for=100").await),
        [ADMIN_ID, "idle", "old", "young"]
    );
    assert_eq!(
        ids(list("?secret_older_than=1100").await),
        [ADMIN_ID, "idle", "old"]
    );
    assert_eq!(
        ids(list("?secret_older_than=1101").await),
        Vec::<String>::new()
    );
    assert_eq!(
        ids(list("?unused_for=100&secret_older_than=1050").await),
        [ADMIN_ID, "idle", "old"]
    );
    let rolled = rotated(&app, "old", None).await;
    assert!(rolled["client_secret"].is_string());
    assert_eq!(
        ids(list("?secret_older_than=1050").await),
        [ADMIN_ID, "idle"]
    );

    for (query, named) in [
        ("?unused_for=-1", "unused_for"),
        ("?unused_for=soon", "unused_for"),
        ("?unused_for=", "unused_for"),
        ("?secret_older_than=4294967296", "secret_older_than"),
    ] {
        let response = app.admin_get(&format!("/admin/clients{query}")).await;
        let error = assert_error(response, 400, "invalid_request").await;
        assert!(
            error["error_description"].as_str().unwrap().contains(named),
            "{query}"
        );
    }
    let response = app.get("/admin/clients").send().await.unwrap();
    assert_error(response, 401, "invalid_client").await;
    let response = app
        .get("/admin/clients")
        .basic_auth("old", Some(rolled["client_secret"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_error(response, 403, "access_denied").await;
}

/// The gauge's value in a Prometheus exposition.
fn gauge(exposition: &str, name: &str) -> u64 {
    exposition
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{name} in the exposition"))
        .parse()
        .unwrap()
}

async fn metrics(app: &TestApp) -> String {
    let response = app.get("/metrics").send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

async fn gauges_count_expiring_expired_and_unused_clients(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let soon = workload(&app, "soon", json!({"secret_max_age": 86_400})).await;
    workload(&app, "brief", json!({"secret_max_age": 60})).await;
    workload(&app, "later", json!({"secret_max_age": 35 * 86_400})).await;
    let busy = workload(&app, "busy", json!({})).await;
    workload(&app, "off", json!({"secret_max_age": 60})).await;
    let response = app
        .admin(Method::PATCH, "/admin/clients/off")
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    app.clock.advance(Duration::seconds(61));
    let counts = app.issuer.refresh_hygiene_gauges().await.unwrap();
    assert_eq!(
        counts.secrets_expiring_soon, 1,
        "soon (a disabled client is not counted)"
    );
    assert_eq!(counts.secrets_expired, 1, "brief");
    assert_eq!(counts.unused, 0);
    let text = metrics(&app).await;
    assert_eq!(gauge(&text, "tessera_client_secrets_expiring_soon"), 1);
    assert_eq!(gauge(&text, "tessera_client_secrets_expired"), 1);
    assert_eq!(gauge(&text, "tessera_clients_unused"), 0);
    assert!(text.contains("# TYPE tessera_clients_unused gauge"));
    assert!(!text.contains(&soon));

    app.clock.advance(Duration::days(30));
    assert_eq!(grant(&app, "busy", &busy).await, 200);
    app.issuer.flush_usage().await.unwrap();
    app.issuer.refresh_hygiene_gauges().await.unwrap();
    let text = metrics(&app).await;
    // Unused for 30 days: the admin (last used before the advance), soon, brief, later.
    assert_eq!(gauge(&text, "tessera_clients_unused"), 4);
    assert_eq!(
        gauge(&text, "tessera_client_secrets_expired"),
        2,
        "soon and brief"
    );
    assert_eq!(
        gauge(&text, "tessera_client_secrets_expiring_soon"),
        1,
        "later"
    );
}

both_backends!(
    the_old_secret_works_during_the_overlap_then_stops,
    without_an_overlap_the_old_secret_stops_at_once,
    the_bootstrap_admin_rolls_its_chosen_secret_with_an_overlap,
    concurrent_rotations_lose_no_shown_secret,
    a_bad_rotation_is_refused_naming_the_parameter_and_changes_nothing,
    secrets_expire_after_the_global_max_age,
    a_clients_own_max_age_wins,
    use_is_recorded_in_batches_per_client_and_scope,
    recorded_use_survives_a_graceful_restart,
    instances_merge_use_and_the_latest_wins,
    clients_are_listed_by_disuse_and_secret_age,
    gauges_count_expiring_expired_and_unused_clients,
);
