//! POST /token: client authentication, the client_credentials and password grants, every
//! error code, real OAuth and JWT libraries, timing, throttling and the argon2 bound.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use crate::both_backends;
use crate::helpers::{Backend, TestApp, TestDb, assert_error, eventually};

const API: &str = "https://api.example.com";

async fn ok_json(response: reqwest::Response) -> Value {
    let status = response.status();
    let headers = response.headers().clone();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["pragma"], "no-cache");
    body
}

fn claims(token: &str) -> Value {
    crate::helpers::jwt_claims(token)
}

async fn client_credentials_with_basic_and_post(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (id, secret) = app.standard_client().await;

    let body = ok_json(
        app.token(
            Some((&id, &secret)),
            &[("grant_type", "client_credentials")],
        )
        .await,
    )
    .await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300);
    assert_eq!(
        body["scope"], "read write",
        "no scope asked: all the client may have"
    );
    assert!(
        body.get("refresh_token").is_none(),
        "client_credentials has no refresh token"
    );
    let c = claims(body["access_token"].as_str().unwrap());
    assert_eq!(c["sub"], id.as_str());
    assert_eq!(c["client_id"], id.as_str());
    assert_eq!(c["aud"], API, "the client's first audience by default");
    assert!(c.get("sid").is_none());

    let body = ok_json(
        app.token(
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &id),
                ("client_secret", &secret),
                ("scope", "write"),
                ("resource", "https://other.example.com"),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(body["scope"], "write");
    assert_eq!(
        claims(body["access_token"].as_str().unwrap())["aud"],
        "https://other.example.com"
    );
    let body = ok_json(
        app.token(
            Some((&id, &secret)),
            &[("grant_type", "client_credentials"), ("audience", API)],
        )
        .await,
    )
    .await;
    assert_eq!(claims(body["access_token"].as_str().unwrap())["aud"], API);
}

async fn password_grant_issues_a_session_token_for_the_user(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (id, secret) = app.standard_client().await;
    let sub = app.create_user("Alice", "correct horse battery").await;
    // Usernames compare by NFKC + case fold.
    let body = ok_json(
        app.token(
            Some((&id, &secret)),
            &[
                ("grant_type", "password"),
                ("username", "ＡＬＩＣＥ"),
                ("password", "correct horse battery"),
                ("scope", "read"),
            ],
        )
        .await,
    )
    .await;
    let c = claims(body["access_token"].as_str().unwrap());
    assert_eq!(c["sub"], sub.as_str());
    assert_eq!(c["scope"], "read");
    assert!(
        uuid::Uuid::parse_str(c["sid"].as_str().unwrap()).is_ok(),
        "a password login has a session"
    );
    assert!(
        c.get("username").is_none() && c.get("email").is_none(),
        "no personal data"
    );
}

async fn every_token_error_code(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (id, secret) = app.standard_client().await;
    let auth = Some((id.as_str(), secret.as_str()));
    let (narrow, narrow_secret) = app
        .create_client(serde_json::json!({"grant_types": ["password"], "scopes": ["read"], "audiences": [API]}))
        .await;
    let narrow_secret = narrow_secret.unwrap();

    // invalid_request: missing grant_type, repeated parameter, missing username, wrong media type,
    // two authentication methods at once.
    assert_error(
        app.token(auth, &[("scope", "read")]).await,
        400,
        "invalid_request",
    )
    .await;
    assert_error(
        app.token(
            auth,
            &[
                ("grant_type", "client_credentials"),
                ("scope", "read"),
                ("scope", "write"),
            ],
        )
        .await,
        400,
        "invalid_request",
    )
    .await;
    assert_error(
        app.token(auth, &[("grant_type", "password"), ("password", "x")])
            .await,
        400,
        "invalid_request",
    )
    .await;
    let json = app
        .request(reqwest::Method::POST, "/token")
        .basic_auth(&id, Some(&secret))
        .json(&serde_json::json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_error(json, 400, "invalid_request").await;
    assert_error(
        app.token(
            auth,
            &[
                ("grant_type", "client_credentials"),
                ("client_secret", &secret),
            ],
        )
        .await,
        400,
        "invalid_request",
    )
    .await;
    // unsupported_grant_type
    assert_error(
        app.token(
            auth,
            &[("grant_type", "urn:ietf:params:oauth:grant-type:device_code")],
        )
        .await,
        400,
        "unsupported_grant_type",
    )
    .await;
    // unauthorized_client: a client without client_credentials
    assert_error(
        app.token(
            Some((&narrow, &narrow_secret)),
            &[("grant_type", "client_credentials")],
        )
        .await,
        400,
        "unauthorized_client",
    )
    .await;
    // invalid_scope: not the client's, or not a scope token at all
    for scope in ["admin", "read admin", "re\"ad"] {
        assert_error(
            app.token(
                auth,
                &[("grant_type", "client_credentials"), ("scope", scope)],
            )
            .await,
            400,
            "invalid_scope",
        )
        .await;
    }
    // invalid_target
    for (name, value) in [
        ("resource", "https://evil.example.com"),
        ("audience", "nope"),
    ] {
        assert_error(
            app.token(auth, &[("grant_type", "client_credentials"), (name, value)])
                .await,
            400,
            "invalid_target",
        )
        .await;
    }
    // invalid_client: wrong secret with Basic (challenge), wrong secret in the form (none),
    // unknown client, no credentials at all.
    let response = app
        .token(
            Some((&id, "tss_wrong")),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(
        response.headers()["www-authenticate"],
        "Basic realm=\"tessera\""
    );
    assert_error(response, 401, "invalid_client").await;
    let response = app
        .token(
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &id),
                ("client_secret", "tss_wrong"),
            ],
        )
        .await;
    assert!(response.headers().get("www-authenticate").is_none());
    assert_error(response, 401, "invalid_client").await;
    assert_error(
        app.token(
            Some(("nobody", "x")),
            &[("grant_type", "client_credentials")],
        )
        .await,
        401,
        "invalid_client",
    )
    .await;
    assert_error(
        app.token(None, &[("grant_type", "client_credentials")])
            .await,
        401,
        "invalid_client",
    )
    .await;
    // invalid_grant
    app.create_user("bob", "bob's password").await;
    assert_error(
        app.token(
            auth,
            &[
                ("grant_type", "password"),
                ("username", "bob"),
                ("password", "wrong password"),
            ],
        )
        .await,
        400,
        "invalid_grant",
    )
    .await;
}

async fn the_oauth2_crate_obtains_tokens_that_jsonwebtoken_verifies(backend: Backend) {
    use oauth2::{
        AuthType, AuthUrl, ClientId, ClientSecret, ResourceOwnerPassword, ResourceOwnerUsername,
        Scope, TokenResponse, TokenUrl,
    };
    let app = TestApp::spawn(backend).await;
    let (id, secret) = app.standard_client().await;
    app.create_user("carol", "carol's long password").await;
    let http = oauth2::reqwest::ClientBuilder::new()
        .redirect(oauth2::reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_value(app.jwks().await).unwrap();

    for auth_type in [AuthType::BasicAuth, AuthType::RequestBody] {
        let client = oauth2::basic::BasicClient::new(ClientId::new(id.clone()))
            .set_client_secret(ClientSecret::new(secret.clone()))
            .set_auth_uri(AuthUrl::new(format!("{}/unused", app.url)).unwrap())
            .set_token_uri(TokenUrl::new(format!("{}/token", app.url)).unwrap())
            .set_auth_type(auth_type.clone());
        let machine = client
            .exchange_client_credentials()
            .add_scope(Scope::new("read".into()))
            .request_async(&http)
            .await
            .unwrap_or_else(|e| panic!("{auth_type:?}: {e:?}"));
        assert_eq!(machine.expires_in(), Some(Duration::from_secs(300)));
        let user = client
            .exchange_password(
                &ResourceOwnerUsername::new("carol".into()),
                &ResourceOwnerPassword::new("carol's long password".into()),
            )
            .request_async(&http)
            .await
            .unwrap_or_else(|e| panic!("{auth_type:?}: {e:?}"));

        for token in [
            machine.access_token().secret(),
            user.access_token().secret(),
        ] {
            let header = jsonwebtoken::decode_header(token).unwrap();
            let key = jsonwebtoken::DecodingKey::from_jwk(
                jwks.find(header.kid.as_deref().unwrap()).unwrap(),
            )
            .unwrap();
            let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
            validation.set_issuer(&[app.url.as_str()]);
            validation.set_audience(&[API]);
            let data = jsonwebtoken::decode::<Value>(token, &key, &validation).unwrap();
            assert_eq!(data.claims["client_id"], id.as_str());
        }
    }
}

/// Unknown user, wrong password and disabled user: the same answer in about the same time.
/// Unknown user, wrong password and disabled user do the same work, so they take the same time
/// (a timing oracle would tell which usernames exist): each answers the same `invalid_grant`
/// after exactly one argon2id verification (against a dummy hash for an unknown user), one
/// counted attempt and one `login_failed` event. The work is counted, not timed: timings on a
/// shared machine are noise; the equal cost is the property.
async fn invalid_grant_does_the_same_work_whatever_the_cause(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (id, secret) = app.standard_client().await;
    app.create_user("wrong", "the right password").await;
    let sub = app.create_user("off", "the right password").await;
    let response = app
        .admin(reqwest::Method::PATCH, &format!("/admin/users/{sub}"))
        .json(&serde_json::json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let failures = || {
        app.db
            .scalar("select count(*) from audit_event where event_type = 'login_failed'")
    };
    let attempts = || {
        app.db
            .scalar("select coalesce(sum(failures), 0) from login_throttle")
    };
    let (mut work, mut bodies) = (Vec::new(), Vec::new());
    for (username, password) in [
        ("ghost", "the right password"),
        ("wrong", "a wrong password"),
        ("off", "the right password"),
    ] {
        let (hashed, failed, counted) = (
            app.issuer.password_verifications(),
            failures().await,
            attempts().await,
        );
        let response = app
            .token(
                Some((&id, &secret)),
                &[
                    ("grant_type", "password"),
                    ("username", username),
                    ("password", password),
                ],
            )
            .await;
        assert_eq!(response.status(), 400);
        bodies.push(response.text().await.unwrap());
        work.push((
            app.issuer.password_verifications() - hashed,
            failures().await - failed,
            attempts().await - counted,
        ));
    }
    assert!(bodies[0].contains("invalid_grant"), "{}", bodies[0]);
    assert!(bodies.iter().all(|b| *b == bodies[0]), "{bodies:?}");
    assert_eq!(
        work,
        [(1, 1, 3); 3],
        "(argon2id verifications, events, counts) per cause"
    );
}

async fn repeated_failures_are_throttled_and_success_resets(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (id, secret) = app.standard_client().await;
    let auth = Some((id.as_str(), secret.as_str()));
    app.create_user("dave", "dave's password").await;
    let app_ref = &app;
    let login = |password: &'static str| async move {
        app_ref
            .token(
                auth,
                &[
                    ("grant_type", "password"),
                    ("username", "dave"),
                    ("password", password),
                ],
            )
            .await
    };

    // Four failures, then a success: the count starts again.
    for _ in 0..4 {
        assert_error(login("wrong").await, 400, "invalid_grant").await;
    }
    ok_json(login("dave's password").await).await;
    for _ in 0..5 {
        assert_error(login("wrong").await, 400, "invalid_grant").await;
    }
    // The fifth failure blocks: even the right password waits.
    let response = login("dave's password").await;
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry_after), "{retry_after}");
    assert_error(response, 429, "slow_down").await;
    app.clock.advance(time::Duration::seconds(31));
    ok_json(login("dave's password").await).await;

    // Guessing a generated 256-bit secret is hopeless, so it is not throttled, and knowing a
    // client id (it is in every token) gives no way to lock that client out.
    for _ in 0..6 {
        let guess = app
            .token(
                Some((&id, "tss_guess")),
                &[("grant_type", "client_credentials")],
            )
            .await;
        assert_error(guess, 401, "invalid_client").await;
    }
    let response = app
        .token(auth, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(response.status(), 200);
    // An operator-chosen (argon2id) secret, like the bootstrap admin's, is throttled.
    for _ in 0..5 {
        let guess = app
            .request(reqwest::Method::GET, "/admin/keys")
            .basic_auth(crate::helpers::ADMIN_ID, Some("guess"))
            .send()
            .await
            .unwrap();
        assert_error(guess, 401, "invalid_client").await;
    }
    let response = app
        .admin(reqwest::Method::GET, "/admin/keys")
        .send()
        .await
        .unwrap();
    assert!(response.headers().contains_key("retry-after"));
    assert_error(response, 429, "slow_down").await;
}

/// A burst of logins never exceeds the hashing bound: some wait, the excess gets 503 with
/// Retry-After, nothing fails, and other endpoints keep answering meanwhile.
async fn a_burst_of_logins_stays_within_the_hashing_bound(backend: Backend) {
    // Each login from its own address (through a trusted proxy): logins are counted before
    // they are verified, so a burst from one address would rightly meet the throttle first.
    let db = Arc::new(TestDb::new(backend).await);
    let app = Arc::new(TestApp::spawn_on(db, |s| s.set("trusted_proxies", "127.0.0.1/32")).await);
    let (id, secret) = app.standard_client().await;
    for i in 0..4 {
        app.create_user(&format!("burst{i}"), "burst password")
            .await;
    }
    let mut logins = Vec::new();
    for i in 0..200 {
        let (app, id, secret) = (Arc::clone(&app), id.clone(), secret.clone());
        logins.push(tokio::spawn(async move {
            let response = app
                .request(reqwest::Method::POST, "/token")
                .basic_auth(&id, Some(&secret))
                .header("x-forwarded-for", format!("10.0.{}.{}", i / 256, i % 256))
                .form(&[
                    ("grant_type", "password"),
                    ("username", &format!("burst{}", i % 4)),
                    ("password", "burst password"),
                ])
                .send()
                .await
                .unwrap();
            (
                response.status(),
                response.headers().contains_key("retry-after"),
            )
        }));
    }
    // Liveness meanwhile.
    let started = Instant::now();
    assert_eq!(app.get("/healthz").send().await.unwrap().status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "healthz starved: {:?}",
        started.elapsed()
    );
    let (mut ok, mut busy) = (0, 0);
    for login in logins {
        match login.await.unwrap() {
            (StatusCode::OK, _) => ok += 1,
            (StatusCode::SERVICE_UNAVAILABLE, true) => busy += 1,
            other => panic!("unexpected answer under a burst: {other:?}"),
        }
    }
    assert!(ok > 0, "some logins succeed");
    assert_eq!(ok + busy, 200);
}

async fn metadata_lists_the_grants_and_methods(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.standard_client().await;
    let body: Value = app
        .get("/.well-known/oauth-authorization-server")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["token_endpoint"], format!("{}/token", app.url));
    assert_eq!(
        body["grant_types_supported"],
        serde_json::json!([
            "authorization_code",
            "client_credentials",
            "password",
            "refresh_token"
        ])
    );
    assert_eq!(
        body["token_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_basic", "client_secret_post", "none"])
    );
    let scopes = body["scopes_supported"].as_array().unwrap();
    assert!(scopes.contains(&Value::from("read")) && scopes.contains(&Value::from("write")));
}

both_backends!(
    client_credentials_with_basic_and_post,
    password_grant_issues_a_session_token_for_the_user,
    every_token_error_code,
    the_oauth2_crate_obtains_tokens_that_jsonwebtoken_verifies,
    invalid_grant_does_the_same_work_whatever_the_cause,
    repeated_failures_are_throttled_and_success_resets,
    a_burst_of_logins_stays_within_the_hashing_bound,
    metadata_lists_the_grants_and_methods,
);

/// A secret rotated on one instance stops working on another within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_secret_is_refused_by_a_second_postgres_instance_within_a_second() {
    let db = Arc::new(TestDb::new(Backend::Postgres).await);
    let first = TestApp::spawn_on(Arc::clone(&db), |s| s).await;
    let second = TestApp::spawn_on(Arc::clone(&db), |s| s).await;
    let (id, old) = first.standard_client().await;
    let grant = [("grant_type", "client_credentials")];
    let known = eventually(Duration::from_secs(1), || async {
        second.token(Some((&id, &old)), &grant).await.status() == 200
    })
    .await;
    assert!(
        known,
        "the second instance did not learn the new client within 1 s"
    );

    let response = first
        .admin(
            reqwest::Method::POST,
            &format!("/admin/clients/{id}/secret"),
        )
        .send()
        .await
        .unwrap();
    let new = response.json::<Value>().await.unwrap()["client_secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new, old);
    let switched = eventually(Duration::from_secs(1), || async {
        second.token(Some((&id, &old)), &grant).await.status() == 401
            && second.token(Some((&id, &new)), &grant).await.status() == 200
    })
    .await;
    assert!(
        switched,
        "the second instance still took the old secret after 1 s"
    );

    // Disabling the client on the first instance locks it out of the second within a second.
    let disabled = first
        .admin(reqwest::Method::POST, "/revoke")
        .basic_auth(crate::helpers::ADMIN_ID, Some(crate::helpers::ADMIN_SECRET))
        .form(&[("client_id", id.as_str()), ("disable", "true")])
        .send()
        .await
        .unwrap();
    assert_eq!(disabled.status(), 200);
    let refused = eventually(Duration::from_secs(1), || async {
        second.token(Some((&id, &new)), &grant).await.status() == 401
    })
    .await;
    assert!(
        refused,
        "the second instance still served a disabled client after 1 s"
    );
}
