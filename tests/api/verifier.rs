//! tessera-verifier against a live Tessera: the sample resource server
//! (`verifier/examples/resource_server.rs`, compiled in here) and the verifier's causes for
//! hostile tokens, on both backends.

use std::sync::Arc;

use serde_json::{Value, json};
use tessera::domain::keys::AccessTokenRequest;
use tessera_verifier::{Rejection, Verifier};

use crate::both_backends;
use crate::helpers::{Backend, TestApp, TestDb};

#[allow(
    dead_code,
    reason = "the example's main is not run here, only its routes"
)]
#[path = "../../verifier/examples/resource_server.rs"]
mod resource_server;

const API: &str = "https://api.example.com";

/// The sample resource server for `API`, on 127.0.0.1:0, verifying tokens of `app`.
async fn resource_server(app: &TestApp) -> String {
    let verifier = Verifier::new(app.url.clone(), API).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, resource_server::app(verifier)).await });
    url
}

/// A client-credentials token with `scope` for `audience`.
async fn token(app: &TestApp, scope: &str, audience: &str) -> String {
    let (id, secret) = app.standard_client().await;
    let response = app
        .token(
            Some((&id, &secret)),
            &[
                ("grant_type", "client_credentials"),
                ("scope", scope),
                ("audience", audience),
            ],
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

async fn the_sample_resource_server_accepts_tessera_tokens(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let rs = resource_server(&app).await;
    let http = reqwest::Client::new();
    let get = |path: &str, token: Option<&str>| {
        let mut request = http.get(format!("{rs}{path}"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    assert_eq!(get("/healthz", None).await.unwrap().status(), 200);

    let read = token(&app, "read", API).await;
    let response = get("/whoami", Some(&read)).await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["scope"], "read");
    assert!(
        body["sub"].is_string() && body["client_id"] == body["sub"],
        "{body}"
    );

    let response = get("/write", Some(&read)).await.unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer error="insufficient_scope", scope="write""#
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        (body["error"].as_str(), body["scope"].as_str()),
        (Some("insufficient_scope"), Some("write"))
    );

    let write = token(&app, "read write", API).await;
    assert_eq!(get("/write", Some(&write)).await.unwrap().status(), 200);

    let response = get("/whoami", None).await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    // Another audience's token, or a tampered one: the same answer, no reason given.
    let other = token(&app, "read", "https://other.example.com").await;
    let mut tampered = read.clone();
    tampered.insert(tampered.find('.').unwrap() + 5, 'A');
    for bad in [other.as_str(), tampered.as_str(), "garbage"] {
        let response = get("/whoami", Some(bad)).await.unwrap();
        assert_eq!(response.status(), 401);
        assert_eq!(
            response.headers()["www-authenticate"],
            r#"Bearer error="invalid_token""#
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body,
            json!({"error": "invalid_token", "error_description": "the access token is not valid"})
        );
    }
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn request() -> AccessTokenRequest<'static> {
    AccessTokenRequest {
        subject: "c0ffee00-0000-4000-8000-000000000001",
        client_id: "billing",
        audience: API,
        scope: Some("read"),
        session_id: None,
        roles: None,
        issued_at: None,
    }
}

async fn hostile_tokens_are_refused_each_for_its_cause(backend: Backend) {
    let db = Arc::new(TestDb::new(backend).await);
    let app = TestApp::spawn_on(Arc::clone(&db), |s| s).await;
    let verifier = Verifier::new(app.url.clone(), API).unwrap();
    let good = app.keys().mint(&request()).unwrap().token;
    assert_eq!(verifier.verify(&good).await.unwrap().client_id, "billing");

    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    let header: Value = {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&parts[0])
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    };
    let kid = header["kid"].as_str().unwrap().to_owned();
    let with_header = |extra: Value, signature: &str| {
        let mut header = header.clone();
        for (name, value) in extra.as_object().unwrap() {
            header[name] = value.clone();
        }
        format!(
            "{}.{}.{signature}",
            b64(header.to_string().as_bytes()),
            parts[1]
        )
    };
    let cases = [
        (
            with_header(json!({"alg": "none"}), ""),
            Rejection::WrongAlgorithm,
        ),
        (
            with_header(json!({"typ": "JWT"}), &parts[2]),
            Rejection::WrongType,
        ),
        (
            with_header(
                json!({"jku": format!("{}/.well-known/jwks.json", app.url)}),
                &parts[2],
            ),
            Rejection::ForbiddenHeader,
        ),
        (
            with_header(json!({"x5u": "https://evil.example/cert.pem"}), &parts[2]),
            Rejection::ForbiddenHeader,
        ),
        (
            with_header(json!({"jwk": app.jwks().await["keys"][0]}), &parts[2]),
            Rejection::ForbiddenHeader,
        ),
    ];
    for (token, rejection) in cases {
        assert_eq!(verifier.verify(&token).await, Err(rejection));
    }
    // HS256 keyed with the published public key (the JWKS entry as the secret).
    let secret = app.jwks().await["keys"][0].to_string();
    let mut hs = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs.typ = Some("at+jwt".into());
    hs.kid = Some(kid.clone());
    let claims: Value = {
        use base64::Engine;
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(&parts[1])
                .unwrap(),
        )
        .unwrap()
    };
    let hmac = jsonwebtoken::encode(
        &hs,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    assert_eq!(verifier.verify(&hmac).await, Err(Rejection::WrongAlgorithm));
    // An attacker's ES256 key under the real kid.
    let group = openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap();
    let attacker = openssl::ec::EcKey::generate(&group).unwrap();
    let pem = openssl::pkey::PKey::from_ec_key(attacker)
        .unwrap()
        .private_key_to_pem_pkcs8()
        .unwrap();
    let mut es = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    es.typ = Some("at+jwt".into());
    es.kid = Some(kid.clone());
    let forged = jsonwebtoken::encode(
        &es,
        &claims,
        &jsonwebtoken::EncodingKey::from_ec_pem(&pem).unwrap(),
    )
    .unwrap();
    assert_eq!(verifier.verify(&forged).await, Err(Rejection::BadSignature));
    // Tampered claims under the real signature.
    let mut more = claims.clone();
    more["scope"] = json!("read write admin");
    parts[1] = b64(more.to_string().as_bytes());
    assert_eq!(
        verifier.verify(&parts.join(".")).await,
        Err(Rejection::BadSignature)
    );
    // Another audience, another issuer (same keys), expired.
    let other = AccessTokenRequest {
        audience: "https://other.example.com",
        ..request()
    };
    let token = app.keys().mint(&other).unwrap().token;
    assert_eq!(verifier.verify(&token).await, Err(Rejection::WrongAudience));
    let elsewhere = TestApp::spawn_on(db, |s| s.set("issuer", "https://elsewhere.example")).await;
    let token = elsewhere.keys().mint(&request()).unwrap().token;
    assert_eq!(verifier.verify(&token).await, Err(Rejection::WrongIssuer));
    app.clock.advance(time::Duration::seconds(-400));
    let token = app.keys().mint(&request()).unwrap().token;
    assert_eq!(verifier.verify(&token).await, Err(Rejection::Expired));
}

async fn key_rotation_is_followed_and_cached_keys_outlive_the_issuer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let verifier = Verifier::new(app.url.clone(), API).unwrap();
    verifier.warm_up().await.unwrap();
    let before = app.keys().mint(&request()).unwrap().token;
    verifier.verify(&before).await.unwrap();
    // A forced rotation and a compromise revocation: the new signing key is verified at once.
    app.keys().rotate(true).await.unwrap();
    let after_rotation = app.keys().mint(&request()).unwrap().token;
    verifier.verify(&after_rotation).await.unwrap();
    let active = app.keys().snapshot().active_kid().unwrap().to_owned();
    app.keys().revoke(&active, None).await.unwrap();
    let after_revocation = app.keys().mint(&request()).unwrap().token;
    verifier.verify(&after_revocation).await.unwrap();
    // The issuer stops: the cached keys keep verifying.
    app.stop().await;
    verifier.verify(&after_revocation).await.unwrap();
}

/// The verifier reads the server's movable clock: moving one moves both.
struct SharedClock(Arc<tessera::clock::MockClock>);

impl tessera_verifier::Clock for SharedClock {
    fn now(&self) -> std::time::SystemTime {
        use tessera::clock::Clock;
        self.0.now().into()
    }
}

/// A revocation reaches a resource server that verifies locally through the Token Status List:
/// its cached list still says valid until the list's `ttl` has passed, then the token is refused.
async fn a_revocation_reaches_a_local_verifier_within_the_lists_ttl(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let verifier = Verifier::builder(app.url.clone(), API)
        .clock(SharedClock(Arc::clone(&app.clock)))
        .build()
        .unwrap();
    let (id, secret) = app.standard_client().await;
    let mint = || async {
        let response = app
            .token(
                Some((&id, &secret)),
                &[("grant_type", "client_credentials"), ("audience", API)],
            )
            .await;
        let body: Value = response.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    };
    let token = mint().await;
    app.issuer.build_status_lists().await.unwrap();
    verifier.verify(&token).await.unwrap();

    let revoked = app
        .request(reqwest::Method::POST, "/revoke")
        .basic_auth(&id, Some(&secret))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    app.issuer.sync().await.unwrap();
    app.issuer.build_status_lists().await.unwrap();
    // Within the ttl the list the verifier cached still says valid: that is the bound.
    verifier.verify(&token).await.unwrap();
    app.clock.advance(time::Duration::seconds(61));
    app.issuer.build_status_lists().await.unwrap();
    assert_eq!(verifier.verify(&token).await, Err(Rejection::Revoked));
    // A token issued after the revocation, in another second, is accepted.
    let later = mint().await;
    app.issuer.build_status_lists().await.unwrap();
    verifier.verify(&later).await.unwrap();
}

/// The issuer goes away: the verifier keeps verifying with its cached keys and lists until the
/// staleness bound is past, then fails closed rather than trust what it can no longer refresh.
async fn with_the_issuer_gone_the_verifier_fails_closed_past_its_staleness_bound(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let verifier = Verifier::builder(app.url.clone(), API)
        .clock(SharedClock(Arc::clone(&app.clock)))
        .staleness(std::time::Duration::from_secs(120))
        .build()
        .unwrap();
    let token = app.keys().mint(&request()).unwrap().token;
    verifier.verify(&token).await.unwrap();
    let keys = Arc::clone(app.issuer.keys());
    let clock = Arc::clone(&app.clock);
    app.stop().await;
    // Within the JWKS max-age (300 s) plus the staleness bound: still verified.
    clock.advance(time::Duration::seconds(400));
    let fresh = keys.mint(&request()).unwrap().token;
    verifier.verify(&fresh).await.unwrap();
    // Past it: refused, whatever the token.
    clock.advance(time::Duration::seconds(30));
    let fresher = keys.mint(&request()).unwrap().token;
    assert_eq!(
        verifier.verify(&fresher).await,
        Err(Rejection::KeysUnavailable)
    );
}

both_backends!(
    with_the_issuer_gone_the_verifier_fails_closed_past_its_staleness_bound,
    a_revocation_reaches_a_local_verifier_within_the_lists_ttl,
    the_sample_resource_server_accepts_tessera_tokens,
    hostile_tokens_are_refused_each_for_its_cause,
    key_rotation_is_followed_and_cached_keys_outlive_the_issuer,
);
