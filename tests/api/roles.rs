//! Roles and least privilege (CONTRACT: Roles and least privilege): named scope sets, the scopes a
//! user's token may carry, and a lost scope taking effect at once, everywhere.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, TestApp, TestDb, assert_error, eventually};

fn claims(token: &str) -> Value {
    crate::helpers::jwt_claims(token)
}

/// A confidential client with the password and refresh grants and scopes `read write admin`.
async fn client(app: &TestApp) -> (String, String) {
    let (id, secret) = app
        .create_client(json!({
            "grant_types": ["password", "refresh_token"],
            "scopes": ["read", "write", "admin"],
            "audiences": ["https://api.example.com"],
        }))
        .await;
    (id, secret.unwrap())
}

async fn login(
    app: &TestApp,
    client: &(String, String),
    username: &str,
    scope: Option<&str>,
) -> reqwest::Response {
    let mut form = vec![
        ("grant_type", "password"),
        ("username", username),
        ("password", "a good password"),
    ];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    app.token(Some((&client.0, &client.1)), &form).await
}

/// The access and refresh token of a login that must succeed.
async fn tokens(
    app: &TestApp,
    client: &(String, String),
    username: &str,
    scope: Option<&str>,
) -> (String, String) {
    let response = login(app, client, username, scope).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let body: Value = response.json().await.unwrap();
    (
        body["access_token"].as_str().unwrap().to_owned(),
        body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

async fn refresh(app: &TestApp, client: &(String, String), token: &str) -> reqwest::Response {
    app.request(Method::POST, "/refresh")
        .basic_auth(&client.0, Some(&client.1))
        .json(&json!({ "refresh_token": token }))
        .send()
        .await
        .unwrap()
}

/// Whether `token` is active at `app`'s /introspect (asked by the admin).
async fn active(app: &TestApp, token: &str) -> bool {
    let response = app
        .admin(Method::POST, "/introspect")
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["active"].as_bool().unwrap()
}

async fn user(app: &TestApp, username: &str, roles: &[&str]) -> String {
    app.create_user_with_roles(username, "a good password", roles)
        .await
}

async fn set_roles(app: &TestApp, user_id: &str, roles: &[&str]) -> reqwest::Response {
    app.admin(Method::PATCH, &format!("/admin/users/{user_id}"))
        .json(&json!({ "roles": roles }))
        .send()
        .await
        .unwrap()
}

async fn role_count(app: &TestApp) -> i64 {
    app.db.scalar("select count(*) from role").await
}

async fn roles_are_named_scope_sets_managed_by_admins(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let put = |name: &str, body: Value| {
        app.admin(Method::PUT, &format!("/admin/roles/{name}"))
            .json(&body)
    };
    let created = put(
        "billing.reader",
        json!({"scopes": ["read", "billing:read", "read"], "description": "Reads invoices"}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["name"], "billing.reader");
    assert_eq!(created["scopes"], json!(["read", "billing:read"]));
    assert_eq!(created["description"], "Reads invoices");
    assert!(created["created_at"].as_str().unwrap().contains('T'));

    let replaced = put("billing.reader", json!({"scopes": ["billing:read"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(replaced.status(), 200);
    let replaced: Value = replaced.json().await.unwrap();
    assert_eq!(replaced["scopes"], json!(["billing:read"]));
    assert_eq!(replaced["description"], Value::Null);
    assert_eq!(replaced["created_at"], created["created_at"]);

    app.put_role("admin", &["admin"]).await;
    let listed: Value = app.admin_get("/admin/roles").await.json().await.unwrap();
    let names: Vec<&str> = listed["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "billing.reader"]);
    let one: Value = app
        .admin_get("/admin/roles/billing.reader")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(one, replaced);

    let deleted = app
        .admin(Method::DELETE, "/admin/roles/billing.reader")
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert_error(
        app.admin_get("/admin/roles/billing.reader").await,
        404,
        "not_found",
    )
    .await;
    let again = app
        .admin(Method::DELETE, "/admin/roles/billing.reader")
        .send()
        .await
        .unwrap();
    assert_error(again, 404, "not_found").await;

    // Only admins.
    let (id, secret) = client(&app).await;
    let response = app
        .request(Method::GET, "/admin/roles")
        .basic_auth(&id, Some(&secret))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);

    // Each change is audited.
    let events: Value = app
        .admin_get("/admin/audit?type=role_changed")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(events["events"].as_array().unwrap().len(), 4);
}

async fn bad_roles_are_refused_naming_the_parameter_and_change_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.put_role("reader", &["read"]).await;
    let before = role_count(&app).await;
    let cases = [
        ("bad%20name", json!({"scopes": ["read"]}), "name"),
        (&"x".repeat(65), json!({"scopes": ["read"]}), "name"),
        ("reader", json!({"scopes": ["re ad"]}), "scopes"),
        ("reader", json!({"scopes": ["a\"b"]}), "scopes"),
        ("reader", json!({"scopes": [""]}), "scopes"),
        ("reader", json!({"scopes": ["é"]}), "scopes"),
        (
            "reader",
            json!({"scopes": ["read"], "description": "x".repeat(1025)}),
            "description",
        ),
        ("reader", json!({"scopes": "read"}), "scopes"),
        ("reader", json!({}), "scopes"),
        ("reader", json!({"scopes": ["read"], "extra": 1}), "extra"),
    ];
    for (name, body, parameter) in cases {
        let response = app
            .admin(Method::PUT, &format!("/admin/roles/{name}"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{name} {body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"], "invalid_request");
        assert!(
            error["error_description"]
                .as_str()
                .unwrap()
                .contains(parameter),
            "{error} should name {parameter}"
        );
    }
    assert_eq!(role_count(&app).await, before);
    let reader: Value = app
        .admin_get("/admin/roles/reader")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(reader["scopes"], json!(["read"]));

    // Unknown or malformed roles given to a user: 400 naming `roles`, no user, no change.
    let users = app.db.scalar("select count(*) from user_account").await;
    for roles in [
        json!(["reader", "ghost"]),
        json!(["bad name"]),
        json!("reader"),
    ] {
        let response = app
            .admin(Method::POST, "/admin/users")
            .json(&json!({"username": "mallory", "password": "a good password", "roles": roles}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{roles}");
        let error: Value = response.json().await.unwrap();
        assert!(
            error["error_description"]
                .as_str()
                .unwrap()
                .contains("roles"),
            "{error}"
        );
    }
    assert_eq!(
        app.db.scalar("select count(*) from user_account").await,
        users
    );

    let id = user(&app, "alice", &["reader"]).await;
    for body in [
        json!({"roles": ["ghost"], "disabled": true}),
        json!({"roles": ["reader", "bad/name"]}),
    ] {
        let response = app
            .admin(Method::PATCH, &format!("/admin/users/{id}"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
    }
    let alice: Value = app
        .admin_get(&format!("/admin/users/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(alice["roles"], json!(["reader"]));
    assert_eq!(alice["disabled"], false);
}

async fn users_show_and_change_their_roles(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.put_role("reader", &["read"]).await;
    app.put_role("writer", &["write"]).await;
    let created = app
        .admin(Method::POST, "/admin/users")
        .json(&json!({"username": "alice", "password": "a good password", "roles": ["writer", "reader", "writer"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["roles"], json!(["reader", "writer"]));
    let id = created["id"].as_str().unwrap();

    let shown: Value = app
        .admin_get(&format!("/admin/users/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shown["id"], id);
    assert_eq!(shown["username"], "alice");
    assert_eq!(shown["roles"], json!(["reader", "writer"]));
    assert_eq!(shown["disabled"], false);
    assert!(shown["updated_at"].is_string());
    assert!(shown.get("password").is_none() && shown.get("password_phc").is_none());

    let patched = set_roles(&app, id, &["writer"]).await;
    assert_eq!(patched.status(), 200);
    let patched: Value = patched.json().await.unwrap();
    assert_eq!(patched["roles"], json!(["writer"]));
    let emptied: Value = set_roles(&app, id, &[]).await.json().await.unwrap();
    assert_eq!(emptied["roles"], json!([]));

    assert_error(
        app.admin_get("/admin/users/00000000-0000-4000-8000-000000000000")
            .await,
        404,
        "not_found",
    )
    .await;
    assert_error(
        app.admin_get("/admin/users/not-a-uuid").await,
        404,
        "not_found",
    )
    .await;
    let ghost = set_roles(&app, "00000000-0000-4000-8000-000000000000", &["reader"]).await;
    assert_error(ghost, 404, "not_found").await;

    // Deleting a role takes it from its holders.
    set_roles(&app, id, &["reader", "writer"]).await;
    app.admin(Method::DELETE, "/admin/roles/writer")
        .send()
        .await
        .unwrap();
    let shown: Value = app
        .admin_get(&format!("/admin/users/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shown["roles"], json!(["reader"]));

    let events: Value = app
        .admin_get("/admin/audit?type=user_roles_changed")
        .await
        .json()
        .await
        .unwrap();
    let events = events["events"].as_array().unwrap();
    assert_eq!(events.len(), 3);
    assert_eq!(events[0]["subject"], id);
    assert_eq!(events[0]["detail"]["roles"], json!(["reader", "writer"]));
    // The second change (writer only → none) took `write` away.
    assert_eq!(events[1]["detail"]["lost"], json!(["write"]));
}

async fn a_users_tokens_carry_only_scopes_the_client_allows_and_the_user_holds(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = client(&app).await;
    app.put_role("reader", &["read", "billing:read"]).await;
    app.put_role("writer", &["write"]).await;
    user(&app, "nobody", &[]).await;
    user(&app, "reader", &["reader"]).await;
    user(&app, "both", &["reader", "writer"]).await;

    // No role: no scope at all, with or without asking; and no asking for a scope not held.
    for (username, scope) in [
        ("nobody", None),
        ("nobody", Some("read")),
        ("reader", Some("read write")),
        ("reader", Some("admin")),
    ] {
        let response = login(&app, &client, username, scope).await;
        assert_error(response, 400, "invalid_scope").await;
    }
    // Without `scope`: what both allow (billing:read is the user's, not the client's).
    let (access, _) = tokens(&app, &client, "reader", None).await;
    let claims_of_reader = claims(&access);
    assert_eq!(claims_of_reader["scope"], "read");
    assert_eq!(claims_of_reader["roles"], json!(["reader"]));

    // Two roles: the union, and the token names each role that granted a scope it carries.
    let (access, _) = tokens(&app, &client, "both", None).await;
    let both = claims(&access);
    assert_eq!(both["scope"], "read write");
    assert_eq!(both["roles"], json!(["reader", "writer"]));
    let (access, _) = tokens(&app, &client, "both", Some("write")).await;
    assert_eq!(claims(&access)["roles"], json!(["writer"]));

    // A client acting for itself has no roles claim.
    let (cc, cc_secret) = app
        .create_client(json!({
            "grant_types": ["client_credentials"],
            "scopes": ["read"],
            "audiences": ["https://api.example.com"],
        }))
        .await;
    let body: Value = app
        .token(
            Some((&cc, &cc_secret.unwrap())),
            &[("grant_type", "client_credentials")],
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(
        claims(body["access_token"].as_str().unwrap())
            .get("roles")
            .is_none()
    );
}

async fn a_lost_scope_cuts_off_earlier_tokens_at_once_and_the_next_refresh_narrows(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let client = client(&app).await;
    app.put_role("editor", &["read", "write"]).await;
    app.put_role("viewer", &["read"]).await;
    let alice = user(&app, "alice", &["editor"]).await;
    user(&app, "bob", &["viewer"]).await;
    let (wide, refresh_token) = tokens(&app, &client, "alice", None).await;
    let (narrow, _) = tokens(&app, &client, "alice", Some("read")).await;
    let (bobs, _) = tokens(&app, &client, "bob", None).await;
    assert!(active(&app, &wide).await && active(&app, &narrow).await);

    // Gaining a scope touches nothing issued.
    app.put_role("editor", &["read", "write", "admin"]).await;
    assert!(active(&app, &wide).await);
    assert_eq!(claims(&wide)["scope"], "read write");

    // The role loses `write`: the token carrying it is inactive at once; the one that does
    // not carry it, and the other role's, stay.
    let revocations = app.db.scalar("select count(*) from revocation").await;
    app.put_role("editor", &["read", "admin"]).await;
    assert!(!active(&app, &wide).await);
    assert!(active(&app, &narrow).await);
    assert!(active(&app, &bobs).await);
    // One entry, however many holders (and one more once the change has committed).
    let added = app.db.scalar("select count(*) from revocation").await - revocations;
    assert!((1..=2).contains(&added), "{added} revocation rows");

    // The session stays; its next refresh carries what alice still holds.
    let response = refresh(&app, &client, &refresh_token).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let refreshed = body["access_token"].as_str().unwrap();
    assert_eq!(body["scope"], "read");
    assert_eq!(claims(refreshed)["scope"], "read");
    assert!(active(&app, refreshed).await);
    let next = body["refresh_token"].as_str().unwrap().to_owned();

    // Asking a refresh for the lost scope is refused, and uses nothing up.
    let response = app
        .request(Method::POST, "/refresh")
        .basic_auth(&client.0, Some(&client.1))
        .json(&json!({ "refresh_token": next, "scope": "write" }))
        .send()
        .await
        .unwrap();
    assert_error(response, 400, "invalid_scope").await;

    // Nothing left: invalid_grant, and the session stays (a new role brings it back).
    app.admin(Method::DELETE, "/admin/roles/editor")
        .send()
        .await
        .unwrap();
    assert!(!active(&app, refreshed).await);
    assert_error(refresh(&app, &client, &next).await, 400, "invalid_grant").await;
    assert_eq!(set_roles(&app, &alice, &["viewer"]).await.status(), 200);
    let response = refresh(&app, &client, &next).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["scope"], "read");

    let metrics = app
        .get("/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("tessera_revocations_total{selector=\"role\"}"),
        "{metrics}"
    );
}

async fn a_user_losing_a_role_loses_its_scopes_and_no_one_else(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = client(&app).await;
    app.put_role("editor", &["read", "write"]).await;
    app.put_role("viewer", &["read"]).await;
    let alice = user(&app, "alice", &["editor", "viewer"]).await;
    user(&app, "bob", &["editor"]).await;
    let (alices_write, alices_refresh) = tokens(&app, &client, "alice", None).await;
    let (alices_read, _) = tokens(&app, &client, "alice", Some("read")).await;
    let (bobs, _) = tokens(&app, &client, "bob", None).await;

    // Alice keeps `read` through viewer: only what carries `write` goes.
    assert_eq!(set_roles(&app, &alice, &["viewer"]).await.status(), 200);
    assert!(!active(&app, &alices_write).await);
    assert!(active(&app, &alices_read).await);
    assert!(active(&app, &bobs).await);
    let body: Value = refresh(&app, &client, &alices_refresh)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["scope"], "read");

    // A change that takes nothing away revokes nothing.
    let revocations = app.db.scalar("select count(*) from revocation").await;
    assert_eq!(
        set_roles(&app, &alice, &["viewer", "editor"])
            .await
            .status(),
        200
    );
    assert_eq!(
        app.db.scalar("select count(*) from revocation").await,
        revocations
    );
    assert!(active(&app, &alices_read).await);
}

/// A role edit reaching many users writes O(1) rows and adds O(1) entries to the in-memory
/// state, whatever the number of holders.
async fn a_role_edit_costs_the_same_whatever_the_number_of_holders(backend: Backend) {
    const HOLDERS: i64 = 100_000;
    let app = TestApp::spawn(backend).await;
    app.put_role("staff", &["read", "write"]).await;
    let insert_users = match backend {
        Backend::Postgres => format!(
            "insert into user_account (user_id, username, username_key, password_phc, disabled, created_at, updated_at)
             select gen_random_uuid(), 'u' || i, 'u' || i, 'x', false, now(), now()
             from generate_series(1, {HOLDERS}) i"
        ),
        Backend::Sqlite => format!(
            "with recursive n(i) as (select 1 union all select i + 1 from n where i < {HOLDERS})
             insert into user_account (user_id, username, username_key, password_phc, disabled, created_at, updated_at)
             select lower(hex(randomblob(16))), 'u' || i, 'u' || i, 'x', 0, 0, 0 from n"
        ),
    };
    app.db.execute(&insert_users).await;
    app.db
        .execute(
            "insert into user_role (user_id, role_name) select user_id, 'staff' from user_account",
        )
        .await;
    assert_eq!(
        app.db
            .scalar("select count(*) from user_role where role_name = 'staff'")
            .await,
        HOLDERS
    );
    let rows = app.db.scalar("select count(*) from revocation").await;
    let entries = app.issuer.revocations().scope_cutoffs();
    let started = std::time::Instant::now();
    let response = app
        .admin(Method::PUT, "/admin/roles/staff")
        .json(&json!({"scopes": ["read"]}))
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(response.status(), 200);
    eprintln!("a role edit reaching {HOLDERS} users took {took:?} ({backend:?})");
    assert!(app.db.scalar("select count(*) from revocation").await - rows <= 2);
    assert_eq!(app.issuer.revocations().scope_cutoffs() - entries, 1);
}

/// A role edit racing refreshes: each refresh either completed before the edit (its token is
/// cut off) or after it (its token is narrowed). Never a live token carrying the lost scope.
async fn a_role_edit_racing_refreshes_never_leaves_a_live_token_with_a_lost_scope(
    backend: Backend,
) {
    const SESSIONS: usize = 6;
    let app = Arc::new(TestApp::spawn(backend).await);
    let client = client(&app).await;
    app.put_role("editor", &["read", "write"]).await;
    let mut chains = Vec::new();
    for i in 0..SESSIONS {
        let name = format!("user{i}");
        user(&app, &name, &["editor"]).await;
        chains.push(tokens(&app, &client, &name, None).await.1);
    }
    let mut tasks = Vec::new();
    for first in chains {
        let (app, client) = (Arc::clone(&app), client.clone());
        tasks.push(tokio::spawn(async move {
            let mut current = first;
            let mut issued = Vec::new();
            for _ in 0..15 {
                let response = refresh(&app, &client, &current).await;
                if response.status() != 200 {
                    break;
                }
                let body: Value = response.json().await.unwrap();
                issued.push(body["access_token"].as_str().unwrap().to_owned());
                current = body["refresh_token"].as_str().unwrap().to_owned();
            }
            issued
        }));
    }
    tokio::time::sleep(Duration::from_millis(30)).await;
    app.put_role("editor", &["read"]).await;
    let mut checked = 0;
    for task in tasks {
        for token in task.await.unwrap() {
            let carries_write = claims(&token)["scope"]
                .as_str()
                .unwrap()
                .split(' ')
                .any(|s| s == "write");
            if carries_write {
                assert!(
                    !active(&app, &token).await,
                    "a live token still carries write"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= SESSIONS, "{checked} tokens");
}

both_backends!(
    roles_are_named_scope_sets_managed_by_admins,
    bad_roles_are_refused_naming_the_parameter_and_change_nothing,
    users_show_and_change_their_roles,
    a_users_tokens_carry_only_scopes_the_client_allows_and_the_user_holds,
    a_lost_scope_cuts_off_earlier_tokens_at_once_and_the_next_refresh_narrows,
    a_user_losing_a_role_loses_its_scopes_and_no_one_else,
    a_role_edit_costs_the_same_whatever_the_number_of_holders,
    a_role_edit_racing_refreshes_never_leaves_a_live_token_with_a_lost_scope,
);

/// A role change on one instance: the other's introspection turns the token inactive within a
/// second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_change_on_one_postgres_instance_reaches_the_other_within_a_second() {
    let db = Arc::new(TestDb::new(Backend::Postgres).await);
    let issuer = |s: tessera::config::Settings| s.set("issuer", "https://auth.example.test");
    let first = TestApp::spawn_on(Arc::clone(&db), issuer).await;
    let second = TestApp::spawn_on(Arc::clone(&db), issuer).await;
    let client = client(&first).await;
    first.put_role("editor", &["read", "write"]).await;
    let alice = user(&first, "alice", &["editor"]).await;
    let (editor_token, _) = tokens(&first, &client, "alice", None).await;
    assert!(active(&second, &editor_token).await);
    first.put_role("editor", &["read"]).await;
    let gone = eventually(Duration::from_secs(1), || async {
        !active(&second, &editor_token).await
    })
    .await;
    assert!(gone, "still active on the second instance after 1 s");

    // And a user's own change, made on the second instance, reaches the first.
    first.put_role("viewer", &["read"]).await;
    let (reader_token, _) = tokens(&first, &client, "alice", None).await;
    assert_eq!(set_roles(&second, &alice, &[]).await.status(), 200);
    let gone = eventually(Duration::from_secs(1), || async {
        !active(&first, &reader_token).await
    })
    .await;
    assert!(gone, "still active on the first instance after 1 s");
}
