//! Probes, metadata and the common error rules (CONTRACT: common rules, operations).

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};

use crate::both_backends;
use crate::helpers::{Backend, TestApp, TestDb, assert_error, eventually};

async fn healthz_answers_while_the_process_runs(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let response = app.get("/healthz").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
}

async fn readyz_is_ok_when_the_database_answers(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let response = app.get("/readyz").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ready");
}

async fn unknown_paths_get_a_json_404(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for path in ["/nope", "/token/extra", "/.well-known/unknown", "/healthz/"] {
        let response = app.get(path).send().await.unwrap();
        assert_error(response, 404, "not_found").await;
    }
}

async fn wrong_methods_get_a_json_405_with_allow(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (method, path) in [
        (Method::POST, "/healthz"),
        (Method::DELETE, "/readyz"),
        (Method::PUT, "/.well-known/oauth-authorization-server"),
    ] {
        let response = app.request(method, path).send().await.unwrap();
        let allow = response.headers()["allow"].to_str().unwrap().to_owned();
        assert!(allow.contains("GET"), "{allow}");
        assert_error(response, 405, "method_not_allowed").await;
    }
}

async fn bodies_over_64_kib_get_a_json_413(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let too_big = vec![b'a'; 64 * 1024 + 1];
    // The server closes a connection whose body it refused unread: no keep-alive reuse here.
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    for path in ["/healthz", "/token", "/nope"] {
        let response = fresh
            .post(format!("{}{path}", app.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(too_big.clone())
            .send()
            .await
            .unwrap();
        assert_error(response, 413, "invalid_request").await;
    }
    // Exactly at the limit is not rejected for its size.
    let response = app
        .request(Method::GET, "/healthz")
        .body(vec![b'a'; 64 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

async fn every_response_carries_a_request_id(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let response = app.get("/healthz").send().await.unwrap();
    let generated = response.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(
        uuid::Uuid::parse_str(generated).unwrap().get_version_num(),
        4
    );
    // A caller's id (from a load balancer, say) is kept, so logs correlate across hops.
    let response = app
        .get("/nope")
        .header("x-request-id", "lb-1234")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "lb-1234");
    // Anything long or odd is replaced, so logs never carry arbitrary caller text.
    for odd in ["has spaces and \"quotes\"", &"x".repeat(65)] {
        let response = app
            .get("/nope")
            .header("x-request-id", odd)
            .send()
            .await
            .unwrap();
        let id = response.headers()["x-request-id"].to_str().unwrap();
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{odd} became {id}");
    }
}

async fn metadata_names_the_issuer_and_only_what_exists(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let response = app
        .get("/.well-known/oauth-authorization-server")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age")
    );
    let body: serde_json::Value = response.json().await.unwrap();
    // Without TESSERA_ISSUER, the issuer is the bound address.
    assert_eq!(body["issuer"], app.url);
    assert_eq!(
        body["response_types_supported"],
        serde_json::json!(["code"])
    );
    assert_eq!(
        body["authorization_endpoint"],
        format!("{}/authorize", app.url)
    );
    assert_eq!(
        body["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(
        body["authorization_response_iss_parameter_supported"],
        serde_json::json!(true)
    );
    assert!(body["grant_types_supported"].is_array());
}

async fn a_configured_issuer_is_published(backend: Backend) {
    let db = Arc::new(TestDb::new(backend).await);
    let app = TestApp::spawn_on(db, |s| s.set("issuer", "https://auth.example.com/")).await;
    let body: serde_json::Value = app
        .get("/.well-known/oauth-authorization-server")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["issuer"], "https://auth.example.com");
}

both_backends!(
    healthz_answers_while_the_process_runs,
    readyz_is_ok_when_the_database_answers,
    unknown_paths_get_a_json_404,
    wrong_methods_get_a_json_405_with_allow,
    bodies_over_64_kib_get_a_json_413,
    every_response_carries_a_request_id,
    metadata_names_the_issuer_and_only_what_exists,
    a_configured_issuer_is_published,
    metrics_appear_and_move,
    nul_characters_are_bad_input_on_every_backend,
);

/// PostgreSQL cannot store a NUL in text; schemathesis found a 500 for one in an audit filter.
/// Every backend answers the same 4xx, and nothing is stored.
async fn nul_characters_are_bad_input_on_every_backend(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (id, secret) = app.standard_client().await;
    assert_error(
        app.admin_get("/admin/audit?subject=a%00b").await,
        400,
        "invalid_request",
    )
    .await;
    // Unknown audit parameters are refused too (schemathesis: nothing is silently ignored).
    assert_error(
        app.admin_get("/admin/audit?bogus=1").await,
        400,
        "invalid_request",
    )
    .await;
    assert_error(
        app.token(
            Some((&id, &secret)),
            &[
                ("grant_type", "password"),
                ("username", "a\0b"),
                ("password", "x"),
            ],
        )
        .await,
        400,
        "invalid_request",
    )
    .await;
    assert_error(
        app.admin(Method::POST, "/admin/users")
            .header("content-type", "application/json")
            .body(r#"{"username": "a\u0000b", "password": "long enough"}"#)
            .send()
            .await
            .unwrap(),
        400,
        "invalid_request",
    )
    .await;
    assert_error(
        app.admin_get("/admin/clients/a%00b").await,
        404,
        "not_found",
    )
    .await;
    assert_error(
        app.request(Method::POST, "/refresh")
            .basic_auth(&id, Some(&secret))
            .header("content-type", "application/json")
            .body(r#"{"refresh_token": "tsr_\u0000"}"#)
            .send()
            .await
            .unwrap(),
        400,
        "invalid_request",
    )
    .await;
}

/// PostgreSQL only: an outage is something a network database has. The pool must notice that
/// its connections were killed, answer 503 meanwhile, and recover without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_a_postgres_outage_and_recovery() {
    // A short acquire timeout, so the outage shows quickly.
    let db = Arc::new(TestDb::new(Backend::Postgres).await);
    let app = TestApp::spawn_on(db, |s| s.set("database_acquire_timeout", "1")).await;
    assert_eq!(
        app.get("/readyz").send().await.unwrap().status(),
        StatusCode::OK
    );

    app.db.cut_connections().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let response = loop {
        let response = app.get("/readyz").send().await.unwrap();
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            break response;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "readyz never reported the outage"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(response.headers().contains_key("retry-after"));
    let body = assert_error(response, 503, "temporarily_unavailable").await;
    let text = body.to_string();
    assert!(
        !text.contains("select") && !text.contains("tessera_test_"),
        "{text}"
    );
    // Liveness is not readiness: the process is fine.
    assert_eq!(
        app.get("/healthz").send().await.unwrap().status(),
        StatusCode::OK
    );

    app.db.restore_connections().await;
    let came_back = eventually(Duration::from_secs(15), || async {
        app.get("/readyz").send().await.unwrap().status() == StatusCode::OK
    })
    .await;
    assert!(
        came_back,
        "readyz did not recover after the database came back"
    );
}

/// The sum of every sample of `name` whose labels contain all of `labels`.
fn sample(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            line.starts_with(&format!("{name}{{")) || line.starts_with(&format!("{name} "))
        })
        .filter(|line| labels.iter().all(|l| line.contains(l)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn metrics_appear_and_move(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let scrape = || async {
        let response = app.get("/metrics").send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        response.text().await.unwrap()
    };
    let (id, secret) = app.standard_client().await;
    app.create_user("mallory", "mallory's password").await;
    let before = scrape().await;
    let issued = |t: &str| {
        sample(
            t,
            "tessera_tokens_issued_total",
            &["grant=\"client_credentials\""],
        )
    };
    let rotated = |t: &str| sample(t, "tessera_refreshes_total", &["outcome=\"rotated\""]);
    let errors = |t: &str| {
        sample(
            t,
            "tessera_token_errors_total",
            &["error=\"invalid_scope\""],
        )
    };

    for _ in 0..3 {
        let response = app
            .token(
                Some((&id, &secret)),
                &[("grant_type", "client_credentials")],
            )
            .await;
        assert_eq!(response.status(), 200);
    }
    let login: serde_json::Value = app
        .token(
            Some((&id, &secret)),
            &[
                ("grant_type", "password"),
                ("username", "mallory"),
                ("password", "mallory's password"),
            ],
        )
        .await
        .json()
        .await
        .unwrap();
    let response = app
        .token(
            Some((&id, &secret)),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", login["refresh_token"].as_str().unwrap()),
            ],
        )
        .await;
    assert_eq!(response.status(), 200);
    let response = app
        .token(
            Some((&id, &secret)),
            &[("grant_type", "client_credentials"), ("scope", "nope")],
        )
        .await;
    assert_eq!(response.status(), 400);

    let after = scrape().await;
    assert!(
        issued(&after) >= issued(&before) + 3.0,
        "tokens issued did not move"
    );
    assert!(
        rotated(&after) >= rotated(&before) + 1.0,
        "refreshes did not move"
    );
    assert!(
        errors(&after) >= errors(&before) + 1.0,
        "token errors did not move"
    );
    assert!(
        sample(
            &after,
            "tessera_http_request_duration_seconds_count",
            &["route=\"/token\"", "status=\"200\""]
        ) >= 5.0
    );
    for present in [
        "tessera_credential_cache_total",
        "tessera_db_pool_connections",
        "tessera_argon2_wait_seconds",
    ] {
        assert!(after.contains(present), "{present} missing");
    }
    // No label carries a secret, a token or a username.
    for secret in [
        secret.as_str(),
        "mallory",
        login["refresh_token"].as_str().unwrap(),
    ] {
        assert!(
            !after.contains(secret),
            "a secret or username in the metrics"
        );
    }
}

/// GET /openapi.json: an OpenAPI 3.1 document (utoipa's own model reads it back) naming every
/// endpoint of the contract with its methods, each operation with its error answers in the
/// common error shape. Schemathesis checks the server against it in CI (scripts/schemathesis.sh).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_covers_every_endpoint() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let response = app.get("/openapi.json").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let text = response.text().await.unwrap();
    let document: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    let parsed: utoipa::openapi::OpenApi = serde_json::from_str(&text).unwrap();
    // 27 operations on 22 paths.
    assert_eq!(parsed.paths.paths.len(), 22);

    let expected = [
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/.well-known/oauth-authorization-server", "get"),
        ("/.well-known/jwks.json", "get"),
        ("/statuslists/{id}", "get"),
        ("/statuslists", "get"),
        ("/token", "post"),
        ("/refresh", "post"),
        ("/revoke", "post"),
        ("/introspect", "post"),
        ("/admin/audit", "get"),
        ("/metrics", "get"),
        ("/openapi.json", "get"),
        ("/admin/clients", "post"),
        ("/admin/clients", "get"),
        ("/admin/clients/{client_id}", "get"),
        ("/admin/clients/{client_id}", "patch"),
        ("/admin/clients/{client_id}/secret", "post"),
        ("/admin/users", "post"),
        ("/admin/users/{user_id}", "get"),
        ("/admin/users/{user_id}", "patch"),
        ("/admin/roles", "get"),
        ("/admin/roles/{name}", "put"),
        ("/admin/roles/{name}", "get"),
        ("/admin/roles/{name}", "delete"),
        ("/admin/keys", "get"),
        ("/admin/keys/rotate", "post"),
    ];
    let mut operation_ids = std::collections::HashSet::new();
    for (path, method) in expected {
        let operation = &document["paths"][path][method];
        assert!(operation.is_object(), "{method} {path} is not documented");
        assert!(operation_ids.insert(operation["operationId"].as_str().unwrap().to_owned()));
        let responses = operation["responses"].as_object().unwrap();
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{method} {path}"
        );
        let admin = path.starts_with("/admin");
        for (status, answer) in responses {
            if status.starts_with('4') || status.starts_with('5') {
                assert_eq!(
                    answer["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{method} {path} {status}"
                );
            }
        }
        if admin {
            assert_eq!(
                operation["security"],
                serde_json::json!([{"client_secret_basic": []}]),
                "{method} {path}"
            );
            for status in ["401", "403"] {
                assert!(responses.contains_key(status), "{method} {path} {status}");
            }
        }
    }
    // The OAuth endpoints take forms, and name their error answers.
    for path in ["/token", "/revoke", "/introspect"] {
        let operation = &document["paths"][path]["post"];
        assert!(
            operation["requestBody"]["content"]["application/x-www-form-urlencoded"].is_object()
        );
        for status in ["400", "401"] {
            assert!(
                operation["responses"][status].is_object(),
                "{path} {status}"
            );
        }
    }
    let refresh = &document["paths"]["/refresh"]["post"]["requestBody"]["content"];
    assert!(refresh["application/json"].is_object());
    assert!(refresh["application/x-www-form-urlencoded"].is_object());
    assert_eq!(
        document["components"]["securitySchemes"]["client_secret_basic"],
        serde_json::json!({"type": "http", "scheme": "basic", "description": "The client id and secret, each form-urlencoded first (RFC 6749 §2.3.1)"})
    );
}
