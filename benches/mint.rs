//! Minting one access token per algorithm, next to a bare josekit signature of the same payload
//! with a key of the same kind, measured in the same run. Target: minting costs at most 1.3x
//! the bare signature for ES256 and EdDSA.
//!
//! Run: `cargo bench --bench mint`

use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use josekit::jwk::alg::ed::EdCurve;
use josekit::jws::{self, ES256, EdDSA, JwsHeader, JwsSigner, PS256, RS256};
use tessera::clock::SystemClock;
use tessera::config::Settings;
use tessera::crypto::MasterKey;
use tessera::domain::KeyRing;
use tessera::domain::keys::{AccessTokenRequest, KeyPolicy};
use tessera::model::SigningAlg;
use tessera::store;

const REQUEST: AccessTokenRequest<'static> = AccessTokenRequest {
    subject: "c0ffee00-0000-4000-8000-000000000001",
    client_id: "billing",
    audience: "https://api.example.com",
    scope: Some("read write"),
    session_id: Some("5e551011-0000-4000-8000-000000000002"),
    roles: None,
    issued_at: None,
};

fn bare_signer(alg: SigningAlg) -> Box<dyn JwsSigner> {
    match alg {
        SigningAlg::Es256 => Box::new(
            ES256
                .signer_from_jwk(&ES256.generate_key_pair().unwrap().to_jwk_key_pair())
                .unwrap(),
        ),
        SigningAlg::EdDsa => Box::new(
            EdDSA
                .signer_from_jwk(
                    &EdDSA
                        .generate_key_pair(EdCurve::Ed25519)
                        .unwrap()
                        .to_jwk_key_pair(),
                )
                .unwrap(),
        ),
        SigningAlg::Rs256 => Box::new(
            RS256
                .signer_from_jwk(&RS256.generate_key_pair(3072).unwrap().to_jwk_key_pair())
                .unwrap(),
        ),
        SigningAlg::Ps256 => {
            let mut jwk = RS256.generate_key_pair(3072).unwrap().to_jwk_key_pair();
            jwk.set_algorithm("PS256");
            Box::new(PS256.signer_from_jwk(&jwk).unwrap())
        }
    }
}

fn mint(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut group = c.benchmark_group("access_token");
    for alg in SigningAlg::ALL {
        let dir = tempfile::tempdir().unwrap();
        let ring = runtime.block_on(async {
            let config = Settings::default()
                .set(
                    "database_url",
                    format!("sqlite://{}", dir.path().join("b.db").display()),
                )
                .validate()
                .unwrap();
            let store = store::connect(&config.database).await.unwrap();
            store.migrate().await.unwrap();
            let policy = KeyPolicy {
                alg,
                access_token_ttl: std::time::Duration::from_secs(300),
                jwks_max_age: std::time::Duration::from_secs(300),
                rotation_interval: std::time::Duration::from_secs(86_400),
            };
            KeyRing::start(
                store,
                Arc::new(SystemClock),
                Arc::new(MasterKey::generate()),
                policy,
                "https://issuer.example".into(),
            )
            .await
            .unwrap()
        });
        // The same payload bytes our minting signs.
        let token = ring.mint(&REQUEST).unwrap().token;
        let payload = {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(token.split('.').nth(1).unwrap())
                .unwrap()
        };
        let signer = bare_signer(alg);
        let mut header = JwsHeader::new();
        header.set_token_type("at+jwt");
        header.set_key_id("bench");
        group.bench_with_input(BenchmarkId::new("bare_josekit_sign", alg), &alg, |b, _| {
            b.iter(|| jws::serialize_compact(&payload, &header, signer.as_ref()).unwrap())
        });
        // Our signer alone (the same josekit call behind our key handling), to separate the
        // signature from the claims work around it.
        let master = MasterKey::generate();
        let key = tessera::crypto::keys::generate(alg, &master).unwrap();
        let ours = tessera::crypto::keys::Signer::open(
            &key.kid,
            alg,
            &key.private_key_ciphertext,
            &master,
        )
        .unwrap();
        group.bench_with_input(BenchmarkId::new("tessera_signer", alg), &alg, |b, _| {
            b.iter(|| ours.sign(&payload).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("tessera_mint", alg), &alg, |b, _| {
            b.iter(|| ring.mint(&REQUEST).unwrap())
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(std::time::Duration::from_secs(1)).measurement_time(std::time::Duration::from_secs(3));
    targets = mint
}
criterion_main!(benches);
