//! Signing keys: the JWKS, rotation with overlap and publish-ahead, compromise revocation,
//! instances in step, and interop with an independent JWT library.

use std::sync::Arc;
use std::time::Duration;

use tessera::domain::keys::{AccessTokenRequest, KeyRingError, Rejection};

use crate::both_backends;
use crate::helpers::{Backend, TestApp, TestDb, eventually};

fn request() -> AccessTokenRequest<'static> {
    AccessTokenRequest {
        subject: "c0ffee00-0000-4000-8000-000000000001",
        client_id: "billing",
        audience: "https://api.example.com",
        scope: Some("read write"),
        session_id: Some("5e551011-0000-4000-8000-000000000002"),
        roles: None,
        issued_at: None,
    }
}

/// Moves past the publish-ahead time so a rotation may proceed.
fn after_publish_ahead(app: &TestApp) {
    app.clock.advance(time::Duration::seconds(301));
}

async fn jwks_publishes_public_keys_with_caching_headers(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let response = app.get("/.well-known/jwks.json").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "public, max-age=300");
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    assert!(
        etag.starts_with('"') && etag.ends_with('"'),
        "a strong ETag: {etag}"
    );
    let jwks: serde_json::Value = response.json().await.unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    // The active key and the next one, published ahead of its use.
    assert_eq!(keys.len(), 2, "{jwks}");
    let snapshot = app.keys().snapshot();
    for key in keys {
        assert_eq!(key["kty"], "EC");
        assert_eq!(key["crv"], "P-256");
        assert_eq!(key["alg"], "ES256");
        assert_eq!(key["use"], "sig");
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(key.get(private).is_none(), "{private} published");
        }
    }
    let mut kids: Vec<_> = keys.iter().map(|k| k["kid"].as_str().unwrap()).collect();
    kids.sort();
    let mut expected = vec![snapshot.active_kid().unwrap(), snapshot.next_kid().unwrap()];
    expected.sort();
    assert_eq!(kids, expected);

    let cached = app
        .get("/.well-known/jwks.json")
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), 304);
    assert_eq!(cached.headers()["etag"], etag.as_str());
    assert!(cached.bytes().await.unwrap().is_empty());
    let other = app
        .get("/.well-known/jwks.json")
        .header("if-none-match", "\"something-else\"")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);

    let metadata: serde_json::Value = app
        .get("/.well-known/oauth-authorization-server")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        metadata["jwks_uri"],
        format!("{}/.well-known/jwks.json", app.url)
    );
}

async fn minted_tokens_carry_exactly_the_rfc9068_claims(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let minted = app.keys().mint(&request()).unwrap();
    let header: serde_json::Value = decode_part(&minted.token, 0);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["kid"], app.keys().snapshot().active_kid().unwrap());
    let claims: serde_json::Value = decode_part(&minted.token, 1);
    let mut names: Vec<_> = claims.as_object().unwrap().keys().cloned().collect();
    names.sort();
    assert_eq!(
        names,
        [
            "aud",
            "client_id",
            "exp",
            "iat",
            "iss",
            "jti",
            "scope",
            "sid",
            "sub"
        ]
    );
    assert_eq!(claims["iss"], app.url);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        300
    );
    let verified = app.keys().verify(&minted.token).unwrap();
    assert_eq!(verified, minted.claims);
    // jti is unique per token.
    assert_ne!(
        app.keys().mint(&request()).unwrap().claims.jti,
        minted.claims.jti
    );
}

async fn rotation_keeps_the_old_key_verifiable_until_its_tokens_expire(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let before = app.keys().snapshot();
    let (old_kid, next_kid) = (
        before.active_kid().unwrap().to_owned(),
        before.next_kid().unwrap().to_owned(),
    );
    after_publish_ahead(&app);
    let old_token = app.keys().mint(&request()).unwrap();
    let promoted = app.keys().rotate(false).await.unwrap();
    assert_eq!(
        promoted, next_kid,
        "the key published ahead is the one that signs"
    );
    let after = app.keys().snapshot();
    assert_eq!(after.active_kid(), Some(next_kid.as_str()));
    let new_next = after.next_kid().unwrap().to_owned();
    assert!(new_next != old_kid && new_next != next_kid);
    let mut expected = vec![old_kid.clone(), next_kid.clone(), new_next];
    expected.sort();
    assert_eq!(
        app.published_kids().await,
        expected,
        "retired, active and next are published"
    );

    // Tokens signed before the rotation still verify; new ones carry the new kid.
    assert!(app.keys().verify(&old_token.token).is_ok());
    let new_token = app.keys().mint(&request()).unwrap();
    assert_eq!(decode_part(&new_token.token, 0)["kid"], next_kid.as_str());
    assert_eq!(
        app.keys().verify(&new_token.token).unwrap().sub,
        request().subject
    );
    let retired_state = app
        .keys()
        .snapshot()
        .keys
        .iter()
        .find(|k| k.kid == old_kid)
        .unwrap()
        .state;
    assert_eq!(retired_state, "retired");

    // Once every token the retired key signed has expired (TTL + skew), it leaves the JWKS.
    app.clock.advance(time::Duration::seconds(300 + 61));
    app.keys().sync().await.unwrap();
    assert!(!app.published_kids().await.contains(&old_kid));
}

async fn a_token_signed_before_rotation_verifies_after_it(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    after_publish_ahead(&app);
    let token = app.keys().mint(&request()).unwrap();
    app.keys().rotate(false).await.unwrap();
    assert!(app.keys().verify(&token.token).is_ok());
}

async fn a_next_key_does_not_sign_before_one_jwks_max_age(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let next = app.keys().snapshot().next_kid().unwrap().to_owned();
    match app.keys().rotate(false).await {
        Err(KeyRingError::NextKeyTooNew {
            retry_after_seconds,
        }) => {
            assert!((1..=300).contains(&retry_after_seconds));
        }
        other => panic!("rotation should wait for publish-ahead: {other:?}"),
    }
    app.clock.advance(time::Duration::seconds(299));
    assert!(matches!(
        app.keys().rotate(false).await,
        Err(KeyRingError::NextKeyTooNew { .. })
    ));
    // An operator may force it (documented as a risk for cached verifiers).
    assert_eq!(app.keys().rotate(true).await.unwrap(), next);
}

async fn automatic_rotation_happens_after_the_interval(backend: Backend) {
    let db = Arc::new(TestDb::new(backend).await);
    let app = TestApp::spawn_on(db, |s| s.set("key_rotation_interval", "3600")).await;
    let next = app.keys().snapshot().next_kid().unwrap().to_owned();
    assert_eq!(app.keys().rotate_if_due().await.unwrap(), None);
    app.clock.advance(time::Duration::seconds(3600));
    // The background task notices within its sync interval.
    let rotated = eventually(Duration::from_secs(5), || async {
        app.keys().snapshot().active_kid() == Some(next.as_str())
    })
    .await;
    assert!(rotated, "the key due for rotation was not rotated");
    // Audited like an admin's rotation, with the automatic rotation as its actor.
    let audited = eventually(Duration::from_secs(5), || async {
        let events: serde_json::Value = app
            .admin_get("/admin/audit?type=key_rotated")
            .await
            .json()
            .await
            .unwrap();
        events["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["actor"] == "automatic rotation" && e["detail"]["kid"] == next.as_str())
    })
    .await;
    assert!(audited, "the automatic rotation left no audit event");
}

async fn revoking_a_key_removes_it_at_once_and_a_new_key_signs(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let before = app.keys().snapshot();
    let (compromised, next) = (
        before.active_kid().unwrap().to_owned(),
        before.next_kid().unwrap().to_owned(),
    );
    let token = app.keys().mint(&request()).unwrap();

    let previous = app.keys().revoke(&compromised, None).await.unwrap();
    assert_eq!(previous.as_str(), "active");
    let kids = app.published_kids().await;
    assert!(
        !kids.contains(&compromised),
        "a revoked key leaves the JWKS at once"
    );
    assert_eq!(kids.len(), 2, "a new active and a new next key: {kids:?}");
    assert_eq!(app.keys().verify(&token.token), Err(Rejection::UnknownKey));
    let fresh = app.keys().mint(&request()).unwrap();
    assert_eq!(decode_part(&fresh.token, 0)["kid"], next.as_str());
    assert!(app.keys().verify(&fresh.token).is_ok());

    assert!(matches!(
        app.keys().revoke("no-such-kid", None).await,
        Err(KeyRingError::UnknownKey)
    ));
}

async fn verification_rejects_what_is_not_ours_or_not_current(backend: Backend) {
    let db = Arc::new(TestDb::new(backend).await);
    let app = TestApp::spawn_on(Arc::clone(&db), |s| s).await;
    let token = app.keys().mint(&request()).unwrap().token;

    // Expired: valid until exp, not at exp.
    app.clock.advance(time::Duration::seconds(299));
    assert!(app.keys().verify(&token).is_ok());
    app.clock.advance(time::Duration::seconds(1));
    assert_eq!(app.keys().verify(&token), Err(Rejection::Expired));

    // Not yet valid: issued more than the tolerated skew in the future.
    let future = app.keys().mint(&request()).unwrap().token;
    app.clock.advance(time::Duration::seconds(-120));
    assert_eq!(app.keys().verify(&future), Err(Rejection::NotYetValid));

    // Same keys, another issuer: signature fine, iss wrong.
    let other = TestApp::spawn_on(db, |s| s.set("issuer", "https://elsewhere.example")).await;
    let foreign = other.keys().mint(&request()).unwrap().token;
    assert_eq!(app.keys().verify(&foreign), Err(Rejection::WrongIssuer));

    // A token whose header asks for alg none, or HS256 keyed with our public key.
    let kid = app.keys().snapshot().active_kid().unwrap().to_owned();
    let payload = token.split('.').nth(1).unwrap();
    for alg in ["none", "HS256"] {
        let header = b64(&serde_json::json!({"alg": alg, "typ": "at+jwt", "kid": kid}).to_string());
        let forged = format!("{header}.{payload}.");
        assert!(app.keys().verify(&forged).is_err(), "{alg}");
    }
    assert!(app.keys().verify("not.a.jwt").is_err());
    assert!(app.keys().verify("").is_err());
}

async fn the_tokens_verify_with_an_independent_library_for_every_algorithm(backend: Backend) {
    for (alg, library_alg) in [
        ("ES256", jsonwebtoken::Algorithm::ES256),
        ("EdDSA", jsonwebtoken::Algorithm::EdDSA),
        ("RS256", jsonwebtoken::Algorithm::RS256),
        ("PS256", jsonwebtoken::Algorithm::PS256),
    ] {
        let db = Arc::new(TestDb::new(backend).await);
        let app = TestApp::spawn_on(db, |s| s.set("signing_alg", alg)).await;
        let token = app.keys().mint(&request()).unwrap().token;
        let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_value(app.jwks().await).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        let jwk = jwks
            .find(header.kid.as_deref().unwrap())
            .expect("kid in the JWKS");
        let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
        // Pinned algorithm, issuer and audience, as a careful resource server would.
        let mut validation = jsonwebtoken::Validation::new(library_alg);
        validation.set_issuer(&[app.url.as_str()]);
        validation.set_audience(&["https://api.example.com"]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<serde_json::Value>(&token, &key, &validation)
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(data.claims["client_id"], "billing", "{alg}");
        assert_eq!(data.header.typ.as_deref(), Some("at+jwt"));
        // The library refuses the token for another audience: aud is really checked.
        validation.set_audience(&["https://other.example.com"]);
        assert!(jsonwebtoken::decode::<serde_json::Value>(&token, &key, &validation).is_err());
    }
}

async fn a_wrong_master_key_stops_start_up_and_overwrites_nothing(backend: Backend) {
    let db = Arc::new(TestDb::new(backend).await);
    let app = TestApp::spawn_on(Arc::clone(&db), |s| s).await;
    let kids = app.published_kids().await;
    app.stop().await;
    let config = crate::helpers::settings(&db)
        .set("master_key", crate::helpers::master_key())
        .validate()
        .unwrap();
    let clock = Arc::new(tessera::clock::MockClock::starting_now());
    let error = tessera::server::Server::build(config, clock)
        .await
        .err()
        .expect("refused");
    assert!(
        error.to_string().contains("master key does not match"),
        "{error}"
    );
    let again = TestApp::spawn_on(db, |s| s).await;
    assert_eq!(again.published_kids().await, kids);
}

/// Starting an instance on `db` with `master_key` (and `previous`) is refused: the error.
async fn refused_with(db: &TestDb, master_key: &str) -> String {
    let settings = crate::helpers::settings(db).set("master_key", master_key);
    let clock = Arc::new(tessera::clock::MockClock::starting_now());
    tessera::server::Server::build(settings.validate().unwrap(), clock)
        .await
        .err()
        .expect("refused")
        .to_string()
}

/// An instance on `db` with `master_key` and `previous` starts and publishes `kids`.
async fn starts_with(db: &Arc<TestDb>, master_key: &str, previous: &str, kids: &[String]) {
    let (master_key, previous) = (master_key.to_owned(), previous.to_owned());
    let app = TestApp::spawn_on(Arc::clone(db), |s| {
        s.set("master_key", master_key)
            .set("master_key_previous", previous)
    })
    .await;
    assert_eq!(app.published_kids().await, kids);
    app.stop().await;
}

/// `tessera master-key rotate`: every key re-encrypted under the new master key in one go; the
/// kids stay, tokens signed before verify after, and only the new key (or the old one named as
/// previous during the roll-out) opens the database.
async fn master_key_rotation_keeps_the_kids_and_needs_the_new_key(backend: Backend) {
    use tessera::crypto::MasterKey;
    let db = Arc::new(TestDb::new(backend).await);
    let old = db.master_key.clone();
    let new = crate::helpers::master_key();
    let issuer = "https://auth.example.com";
    let app = TestApp::spawn_on(Arc::clone(&db), |s| s.set("issuer", issuer)).await;
    // A retired key too, so not only the signing pair is re-encrypted.
    after_publish_ahead(&app);
    app.keys().rotate(false).await.unwrap();
    let kids = app.published_kids().await;
    let token = app.keys().mint(&request()).unwrap();
    let active = decode_part(&token.token, 0)["kid"].clone();
    app.stop().await;

    // Rolling out: the new key with the old one as previous starts before the rotation.
    starts_with(&db, &new, &old, &kids).await;
    let refused = refused_with(&db, &new).await;
    assert!(refused.contains("master key does not match"), "{refused}");

    let config = crate::helpers::settings(&db).validate().unwrap();
    let store = tessera::store::connect(&config.database).await.unwrap();
    let current = MasterKey::from_base64(&old).unwrap();
    let next = MasterKey::from_base64(&new).unwrap();
    let wrong = MasterKey::from_base64(&crate::helpers::master_key()).unwrap();
    assert!(
        tessera::domain::keys::rotate_master_key(&*store, &wrong, &next)
            .await
            .is_err()
    );
    let rotated = tessera::domain::keys::rotate_master_key(&*store, &current, &next)
        .await
        .unwrap();
    assert_eq!(rotated, 3);
    store.close().await;

    // Only the old key: refused, clearly; the old key named as previous still starts.
    let refused = refused_with(&db, &old).await;
    assert!(refused.contains("master key does not match"), "{refused}");
    starts_with(&db, &new, &old, &kids).await;
    let app = TestApp::spawn_on(Arc::clone(&db), |s| {
        s.set("master_key", new.as_str()).set("issuer", issuer)
    })
    .await;
    assert_eq!(app.published_kids().await, kids);
    after_publish_ahead(&app); // where the first instance's clock was when it signed
    assert!(app.keys().verify(&token.token).is_ok());
    let fresh = app.keys().mint(&request()).unwrap();
    assert_eq!(decode_part(&fresh.token, 0)["kid"], active);
    assert!(app.keys().verify(&fresh.token).is_ok());
    app.stop().await;
}

/// AES-256-GCM directly under the master key, nonce || ciphertext || tag: how the release
/// before per-purpose subkeys stored keys and the check.
fn previous_release_seal(master_key: &str, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
    use base64::Engine;
    let key = base64::engine::general_purpose::STANDARD
        .decode(master_key)
        .unwrap();
    let mut nonce = [0u8; 12];
    openssl::rand::rand_bytes(&mut nonce).unwrap();
    let mut tag = [0u8; 16];
    let ciphertext = openssl::symm::encrypt_aead(
        openssl::symm::Cipher::aes_256_gcm(),
        &key,
        Some(&nonce),
        aad,
        plaintext,
        &mut tag,
    )
    .unwrap();
    [nonce.as_slice(), &ciphertext, &tag].concat()
}

/// A database whose keys and check the previous release wrapped starts and signs with the same
/// kids; `master-key rotate` with the same key rewrites them in the current format.
async fn keys_wrapped_by_the_previous_release_still_load(backend: Backend) {
    use tessera::crypto::MasterKey;
    use tessera::store::Rewrap;
    let db = Arc::new(TestDb::new(backend).await);
    let issuer = "https://auth.example.com";
    let app = TestApp::spawn_on(Arc::clone(&db), |s| s.set("issuer", issuer)).await;
    let kids = app.published_kids().await;
    let token = app.keys().mint(&request()).unwrap();
    app.stop().await;

    let master = MasterKey::from_base64(&db.master_key).unwrap();
    let config = crate::helpers::settings(&db).validate().unwrap();
    let store = tessera::store::connect(&config.database).await.unwrap();
    let check = store.find_master_key_check().await.unwrap().unwrap();
    assert!(check.starts_with(b"tsc1"));
    let check = Rewrap {
        kid: String::new(),
        new: previous_release_seal(
            &db.master_key,
            b"tessera master key check v1",
            b"master_key_check",
        ),
        old: check,
    };
    let keys: Vec<Rewrap> = store
        .list_signing_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|key| {
            assert!(key.private_key_ciphertext.starts_with(b"tsw1"));
            let jwk = master
                .unwrap_signing_key(&key.private_key_ciphertext, &key.kid)
                .unwrap();
            Rewrap {
                new: previous_release_seal(&db.master_key, &jwk, key.kid.as_bytes()),
                kid: key.kid,
                old: key.private_key_ciphertext,
            }
        })
        .collect();
    assert!(store.rewrap_keys(&check, &keys).await.unwrap());

    let app = TestApp::spawn_on(Arc::clone(&db), |s| s.set("issuer", issuer)).await;
    assert_eq!(app.published_kids().await, kids);
    assert!(app.keys().verify(&token.token).is_ok());
    let fresh = app.keys().mint(&request()).unwrap();
    assert_eq!(
        decode_part(&fresh.token, 0)["kid"],
        decode_part(&token.token, 0)["kid"]
    );
    app.stop().await;

    let rewritten = tessera::domain::keys::rotate_master_key(&*store, &master, &master)
        .await
        .unwrap();
    assert_eq!(rewritten, 2);
    for key in store.list_signing_keys().await.unwrap() {
        assert!(
            key.private_key_ciphertext.starts_with(b"tsw1"),
            "{}",
            key.kid
        );
    }
    let check = store.find_master_key_check().await.unwrap().unwrap();
    assert!(check.starts_with(b"tsc1"));
    store.close().await;
    let app = TestApp::spawn_on(Arc::clone(&db), |s| s.set("issuer", issuer)).await;
    assert_eq!(app.published_kids().await, kids);
    app.stop().await;
}

both_backends!(
    keys_wrapped_by_the_previous_release_still_load,
    master_key_rotation_keeps_the_kids_and_needs_the_new_key,
    jwks_publishes_public_keys_with_caching_headers,
    minted_tokens_carry_exactly_the_rfc9068_claims,
    rotation_keeps_the_old_key_verifiable_until_its_tokens_expire,
    a_token_signed_before_rotation_verifies_after_it,
    a_next_key_does_not_sign_before_one_jwks_max_age,
    automatic_rotation_happens_after_the_interval,
    revoking_a_key_removes_it_at_once_and_a_new_key_signs,
    verification_rejects_what_is_not_ours_or_not_current,
    the_tokens_verify_with_an_independent_library_for_every_algorithm,
    a_wrong_master_key_stops_start_up_and_overwrites_nothing,
);

/// Two instances on one PostgreSQL database: a change made through one is served by the other
/// within the one-second bound (LISTEN/NOTIFY, with polling as the fallback).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_postgres_agree_on_the_keys_within_a_second() {
    let db = Arc::new(TestDb::new(Backend::Postgres).await);
    let first = TestApp::spawn_on(Arc::clone(&db), |s| s).await;
    let second = TestApp::spawn_on(Arc::clone(&db), |s| s).await;
    assert_eq!(first.published_kids().await, second.published_kids().await);

    let promoted = first.keys().rotate(true).await.unwrap();
    let expected = first.published_kids().await;
    let agreed = eventually(Duration::from_secs(1), || async {
        second.published_kids().await == expected
            && second.keys().snapshot().active_kid() == Some(promoted.as_str())
    })
    .await;
    assert!(
        agreed,
        "the second instance did not follow the rotation within 1 s"
    );

    first.keys().revoke(&promoted, None).await.unwrap();
    let token_kid_gone = eventually(Duration::from_secs(1), || async {
        !second.published_kids().await.contains(&promoted)
    })
    .await;
    assert!(
        token_kid_gone,
        "the second instance still published a revoked key after 1 s"
    );
}

fn decode_part(token: &str, index: usize) -> serde_json::Value {
    use base64::Engine;
    let part = token.split('.').nth(index).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn b64(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}
