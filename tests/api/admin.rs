//! The admin API: authentication (401 vs 403), validation naming the field, conflicts, clients,
//! users and keys.

use reqwest::Method;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, TestApp, assert_error};

async fn admin_endpoints_need_an_admin_client(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (id, secret) = app.standard_client().await;
    let endpoints = [
        (Method::POST, "/admin/clients"),
        (Method::GET, "/admin/clients/x"),
        (Method::PATCH, "/admin/clients/x"),
        (Method::POST, "/admin/clients/x/secret"),
        (Method::POST, "/admin/users"),
        (Method::PATCH, "/admin/users/x"),
        (Method::GET, "/admin/keys"),
        (Method::POST, "/admin/keys/rotate"),
    ];
    for (i, (method, path)) in endpoints.into_iter().enumerate() {
        let anonymous = app
            .request(method.clone(), path)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            anonymous.headers()["www-authenticate"],
            "Basic realm=\"tessera\""
        );
        assert_error(anonymous, 401, "invalid_client").await;
        if i < 3 {
            // (More failures would rightly get the admin client throttled.)
            let wrong = app
                .request(method.clone(), path)
                .basic_auth("admin", Some("wrong"))
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            assert_error(wrong, 401, "invalid_client").await;
        }
        let not_admin = app
            .request(method.clone(), path)
            .basic_auth(&id, Some(&secret))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_error(not_admin, 403, "access_denied").await;
    }
}

async fn clients_are_created_shown_and_rotated_with_the_secret_shown_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let response = app
        .admin(Method::POST, "/admin/clients")
        .json(&json!({
            "client_id": "billing", "name": "Billing", "grant_types": ["client_credentials"],
            "scopes": ["invoices:read"], "audiences": ["https://billing.example.com"], "introspect": true
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["client_id"], "billing");
    assert_eq!(created["public"], false);
    assert_eq!(created["introspect"], true);
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("tss_") && secret.len() >= 47);
    assert!(
        time::OffsetDateTime::parse(
            created["created_at"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339
        )
        .is_ok()
    );

    let shown: Value = app
        .admin(Method::GET, "/admin/clients/billing")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        shown.get("client_secret").is_none(),
        "never the secret again"
    );
    assert!(!shown.to_string().contains(&secret));
    assert_eq!(shown["scopes"], json!(["invoices:read"]));

    let duplicate = app
        .admin(Method::POST, "/admin/clients")
        .json(&json!({"client_id": "billing", "grant_types": ["client_credentials"], "audiences": ["a"]}))
        .send()
        .await
        .unwrap();
    assert_error(duplicate, 409, "conflict").await;

    let rotated: Value = app
        .admin(Method::POST, "/admin/clients/billing/secret")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let new = rotated["client_secret"].as_str().unwrap();
    assert_ne!(new, secret);
    let grant = [("grant_type", "client_credentials")];
    assert_error(
        app.token(Some(("billing", &secret)), &grant).await,
        401,
        "invalid_client",
    )
    .await;
    assert_eq!(
        app.token(Some(("billing", new)), &grant).await.status(),
        200
    );

    assert_error(
        app.admin(Method::GET, "/admin/clients/nobody")
            .send()
            .await
            .unwrap(),
        404,
        "not_found",
    )
    .await;

    // A public client has no secret, and cannot have one rotated.
    let (public, secret) = app
        .create_client(json!({"grant_types": ["password"], "audiences": ["a"], "public": true}))
        .await;
    assert!(secret.is_none());
    let rotate = app
        .admin(Method::POST, &format!("/admin/clients/{public}/secret"))
        .send()
        .await
        .unwrap();
    assert_error(rotate, 400, "invalid_request").await;
}

async fn client_validation_names_the_field(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let base = json!({"grant_types": ["client_credentials"], "audiences": ["a"]});
    let with = |key: &str, value: Value| {
        let mut body = base.clone();
        body[key] = value;
        body
    };
    for (body, field) in [
        (with("grant_types", json!(["implicit"])), "grant_types"),
        (with("grant_types", json!([])), "grant_types"),
        (with("audiences", json!([])), "audiences"),
        (with("scopes", json!(["has space"])), "scopes"),
        (with("client_id", json!("no/slash")), "client_id"),
        (with("public", json!(true)), "grant_types"),
        (
            json!({"grant_types": ["password"], "audiences": ["a"], "public": true, "admin": true}),
            "admin",
        ),
        (json!({"audiences": ["a"]}), "grant_types"),
        (
            json!({"grant_types": ["password"], "audiences": ["a"], "public": true, "introspect": true}),
            "introspect",
        ),
        (with("colour", json!("blue")), "colour"),
    ] {
        let response = app
            .admin(Method::POST, "/admin/clients")
            .json(&body)
            .send()
            .await
            .unwrap();
        let error = assert_error(response, 400, "invalid_request").await;
        assert!(
            error["error_description"].as_str().unwrap().contains(field),
            "{body} -> {error}"
        );
    }
    let not_json = app
        .admin(Method::POST, "/admin/clients")
        .body("{")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_error(not_json, 400, "invalid_request").await;
}

async fn users_are_created_disabled_and_enabled(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (id, secret) = app.standard_client().await;
    let sub = app.create_user("Erin", "erin's password").await;
    assert!(uuid::Uuid::parse_str(&sub).is_ok());

    for (body, status, code) in [
        (
            json!({"username": "erin", "password": "another password"}),
            409,
            "conflict",
        ),
        (
            json!({"username": "ERIN", "password": "another password"}),
            409,
            "conflict",
        ),
        (
            json!({"username": "frank", "password": "short"}),
            400,
            "invalid_request",
        ),
        (
            json!({"username": "", "password": "long enough"}),
            400,
            "invalid_request",
        ),
        (json!({"username": "frank"}), 400, "invalid_request"),
    ] {
        let response = app
            .admin(Method::POST, "/admin/users")
            .json(&body)
            .send()
            .await
            .unwrap();
        let error = assert_error(response, status, code).await;
        assert!(
            !error.to_string().contains("another password")
                && !error.to_string().contains("short\"")
        );
    }

    let login = || {
        app.token(
            Some((&id, &secret)),
            &[
                ("grant_type", "password"),
                ("username", "erin"),
                ("password", "erin's password"),
            ],
        )
    };
    assert_eq!(login().await.status(), 200);
    let patch = |body: Value| {
        app.admin(Method::PATCH, &format!("/admin/users/{sub}"))
            .json(&body)
            .send()
    };
    let disabled: Value = patch(json!({"disabled": true}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(disabled["disabled"], true);
    assert_error(login().await, 400, "invalid_grant").await;
    assert_eq!(
        patch(json!({"disabled": false})).await.unwrap().status(),
        200
    );
    assert_eq!(login().await.status(), 200);
    // A new password replaces the old one.
    assert_eq!(
        patch(json!({"password": "erin's new password"}))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_error(login().await, 400, "invalid_grant").await;
    assert_error(
        patch(json!({"password": "short"})).await.unwrap(),
        400,
        "invalid_request",
    )
    .await;

    let unknown = app
        .admin(
            Method::PATCH,
            &format!("/admin/users/{}", uuid::Uuid::new_v4()),
        )
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_error(unknown, 404, "not_found").await;
    let not_a_uuid = app
        .admin(Method::PATCH, "/admin/users/not-a-uuid")
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_error(not_a_uuid, 404, "not_found").await;
}

async fn keys_are_listed_and_rotated_over_http(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let listed: Value = app
        .admin(Method::GET, "/admin/keys")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys = listed["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    let next = keys.iter().find(|k| k["state"] == "next").unwrap()["kid"].clone();
    // Too soon: the next key has not been published for one JWKS max-age.
    assert_error(
        app.admin(Method::POST, "/admin/keys/rotate")
            .send()
            .await
            .unwrap(),
        409,
        "conflict",
    )
    .await;
    app.clock.advance(time::Duration::seconds(301));
    let rotated: Value = app
        .admin(Method::POST, "/admin/keys/rotate")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rotated["kid"], next);
    let listed: Value = app
        .admin(Method::GET, "/admin/keys")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let states: Vec<_> = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["state"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(states.iter().filter(|s| *s == "retired").count(), 1);
    assert!(
        listed["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["state"] == "retired" && k["retired_at"].is_string())
    );
}

/// A PATCH that changes the registration and disables is one write: a fault after the client
/// row is written (the database refuses the `client_disabled` event) leaves the client as it
/// was, stored and in the registry.
async fn a_client_patch_is_all_or_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (id, _) = app.code_client(false).await;
    let path = format!("/admin/clients/{id}");
    let before: Value = app.admin_get(&path).await.json().await.unwrap();
    let patch = || {
        app.admin(Method::PATCH, &path)
            .json(&json!({
                "disabled": true, "redirect_uris": ["https://a.example/cb"], "first_party": true
            }))
            .send()
    };
    app.db.refuse_audit_events("client_disabled").await;
    assert_error(patch().await.unwrap(), 500, "server_error").await;
    let after: Value = app.admin_get(&path).await.json().await.unwrap();
    assert_eq!(after, before);
    let redirect = crate::helpers::REDIRECT_URI;
    assert!(app.issuer.authorization_client(&id, redirect).await.is_ok());
    let updates = app
        .db
        .scalar("select count(*) from audit_event where event_type = 'client_updated'")
        .await;
    assert_eq!(updates, 0);

    app.db.accept_audit_events().await;
    let patched: Value = patch().await.unwrap().json().await.unwrap();
    assert_eq!(patched["disabled"], true);
    assert_eq!(patched["redirect_uris"], json!(["https://a.example/cb"]));
    assert_eq!(patched["first_party"], true);
}

both_backends!(
    a_client_patch_is_all_or_nothing,
    admin_endpoints_need_an_admin_client,
    clients_are_created_shown_and_rotated_with_the_secret_shown_once,
    client_validation_names_the_field,
    users_are_created_disabled_and_enabled,
    keys_are_listed_and_rotated_over_http,
);
