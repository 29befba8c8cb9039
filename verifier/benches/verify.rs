//! Verification with a warm cache against bare ES256 signature verification with the same
//! backend (`ring`), in the same run. Target: the warm path at least 0.8 of the bare speed.
//!
//! `cargo bench -p tessera-verifier --bench verify`

use std::hint::black_box;

use axum::Router;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group, criterion_main};
use ring::rand::SystemRandom;
use ring::signature::{self, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::json;
use tessera_verifier::{Claims, Rules, Verifier, jws::PublicKey};

const AUDIENCE: &str = "https://api.example.com";

fn bench(c: &mut Criterion) {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let point = pair.public_key().as_ref().to_vec();
    let jwk = json!({"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": "k1",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..])});

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let metadata = json!({"issuer": issuer, "jwks_uri": format!("{issuer}/jwks")});
    let jwks = json!({"keys": [jwk]});
    let app = Router::new()
        .route(
            "/.well-known/oauth-authorization-server",
            get(move || async move { axum::Json(metadata) }),
        )
        .route("/jwks", get(move || async move { axum::Json(jwks) }));
    runtime.spawn(async move { axum::serve(listener, app).await });

    // A token as Tessera mints it, valid for the whole run.
    let now = std::time::SystemTime::UNIX_EPOCH
        .elapsed()
        .unwrap()
        .as_secs();
    let header = json!({"alg": "ES256", "typ": "at+jwt", "kid": "k1"});
    let claims = json!({"iss": issuer, "sub": "c0ffee00-0000-4000-8000-000000000001",
        "aud": AUDIENCE, "exp": now + 3600, "iat": now, "jti": "0193a3c4-0000-7000-8000-000000000001",
        "client_id": "billing", "scope": "read write"});
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = pair.sign(&rng, input.as_bytes()).unwrap();
    let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()));

    let verifier = Verifier::new(issuer.clone(), AUDIENCE).unwrap();
    runtime.block_on(verifier.warm_up()).unwrap();
    runtime.block_on(verifier.verify(&token)).unwrap();

    let mut group = c.benchmark_group("es256");
    group.bench_function("bare ring verify", |b| {
        let key = signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &point);
        b.iter(|| {
            key.verify(black_box(input.as_bytes()), black_box(signature.as_ref()))
                .unwrap()
        })
    });
    group.bench_function("Rules::verify (no cache)", |b| {
        let key = PublicKey::from_jwk(&jwk.to_string()).unwrap();
        let rules = Rules::new(issuer.clone()).audience(AUDIENCE);
        b.iter(|| {
            rules
                .verify::<Claims, _>(black_box(&token), |_| Some(&key), now as i64)
                .unwrap()
        })
    });
    group.bench_function("Verifier::verify (warm cache)", |b| {
        b.iter(|| {
            runtime
                .block_on(verifier.verify(black_box(&token)))
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
