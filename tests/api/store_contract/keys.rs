//! Keys: the master-key check and the signing-key set (one active, one next, retired and
//! revoked ones kept for the record).

use tessera::model::{KeyState, SigningKey};

use super::{Fixture, secs, signing_key, t0};
use crate::both_backends;
use crate::helpers::Backend;
use tessera::store::{KeyRotation, KeysAdded, Rewrap};

/// (kid, state) of every stored key, sorted by kid.
fn states(keys: &[SigningKey]) -> Vec<(String, KeyState)> {
    let mut states: Vec<_> = keys.iter().map(|k| (k.kid.clone(), k.state)).collect();
    states.sort_by(|a, b| a.0.cmp(&b.0));
    states
}

async fn key_states(fx: &Fixture) -> Vec<(String, KeyState)> {
    states(&fx.store().list_signing_keys().await.unwrap())
}

fn named(pairs: &[(&str, KeyState)]) -> Vec<(String, KeyState)> {
    let mut pairs: Vec<_> = pairs.iter().map(|(k, s)| (k.to_string(), *s)).collect();
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    pairs
}

/// A store with the initial keys `a` (active) and `b` (next).
async fn with_initial_keys(backend: Backend) -> Fixture {
    let fx = Fixture::new(backend).await;
    let added = fx
        .store()
        .add_initial_signing_keys(&signing_key("a"), &signing_key("b"), t0())
        .await
        .unwrap();
    assert_eq!(added, KeysAdded::Added);
    fx
}

async fn the_first_master_key_check_stays(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.store();
    assert_eq!(store.find_master_key_check().await.unwrap(), None);
    let stored = store.add_master_key_check(b"first", t0()).await.unwrap();
    assert_eq!(stored, b"first");
    // A second instance racing the first gets the stored check back, not its own.
    let stored = store.add_master_key_check(b"second", t0()).await.unwrap();
    assert_eq!(stored, b"first");
    assert_eq!(
        store.find_master_key_check().await.unwrap(),
        Some(b"first".to_vec())
    );
    assert_eq!(fx.count("select count(*) from master_key_check").await, 1);
}

async fn initial_keys_are_added_once(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.store();
    let now = t0();
    assert!(store.list_signing_keys().await.unwrap().is_empty());
    let added = store
        .add_initial_signing_keys(&signing_key("a"), &signing_key("b"), now)
        .await
        .unwrap();
    assert_eq!(added, KeysAdded::Added);
    let keys = store.list_signing_keys().await.unwrap();
    assert_eq!(
        states(&keys),
        named(&[("a", KeyState::Active), ("b", KeyState::Next)])
    );
    let active = keys.iter().find(|k| k.kid == "a").unwrap();
    assert_eq!(active.alg, signing_key("a").alg);
    assert_eq!(active.private_key_ciphertext, b"sealed a");
    let jwk: serde_json::Value = serde_json::from_str(&active.public_jwk).unwrap();
    assert_eq!(jwk["kid"], "a");
    assert_eq!(jwk["crv"], "P-256");
    assert_eq!(active.created_at, now);
    assert_eq!(active.activated_at, Some(now));
    assert_eq!(active.retired_at, None);
    assert_eq!(active.revoked_at, None);
    let next = keys.iter().find(|k| k.kid == "b").unwrap();
    assert_eq!(next.activated_at, None);
    // Another instance lost the race: nothing changes.
    let added = store
        .add_initial_signing_keys(&signing_key("c"), &signing_key("d"), now + secs(1))
        .await
        .unwrap();
    assert_eq!(added, KeysAdded::AlreadyPresent);
    assert_eq!(
        key_states(&fx).await,
        named(&[("a", KeyState::Active), ("b", KeyState::Next)])
    );
}

async fn rotation_needs_the_expected_next_key(backend: Backend) {
    let fx = with_initial_keys(backend).await;
    let store = fx.store();
    let later = t0() + secs(60);
    // Neither the active key, nor an unknown one, is the next key: nothing changes.
    for wrong in ["a", "zz"] {
        let rotated = store
            .rotate_signing_keys(wrong, &signing_key("c"), later)
            .await
            .unwrap();
        assert_eq!(rotated, KeyRotation::Skipped);
    }
    assert_eq!(
        key_states(&fx).await,
        named(&[("a", KeyState::Active), ("b", KeyState::Next)])
    );
    let rotated = store
        .rotate_signing_keys("b", &signing_key("c"), later)
        .await
        .unwrap();
    assert_eq!(rotated, KeyRotation::Rotated);
    let keys = store.list_signing_keys().await.unwrap();
    assert_eq!(
        states(&keys),
        named(&[
            ("a", KeyState::Retired),
            ("b", KeyState::Active),
            ("c", KeyState::Next),
        ])
    );
    let retired = keys.iter().find(|k| k.kid == "a").unwrap();
    assert_eq!(retired.retired_at, Some(later));
    let active = keys.iter().find(|k| k.kid == "b").unwrap();
    assert_eq!(active.activated_at, Some(later));
    // A second instance that read the same next key stands down.
    let rotated = store
        .rotate_signing_keys("b", &signing_key("d"), later)
        .await
        .unwrap();
    assert_eq!(rotated, KeyRotation::Skipped);
    assert_eq!(store.list_signing_keys().await.unwrap().len(), 3);
}

async fn rotation_without_keys_changes_nothing(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let rotated = fx
        .store()
        .rotate_signing_keys("a", &signing_key("b"), t0())
        .await
        .unwrap();
    assert_eq!(rotated, KeyRotation::Skipped);
    assert!(fx.store().list_signing_keys().await.unwrap().is_empty());
}

async fn revoking_the_active_key_promotes_the_next(backend: Backend) {
    let fx = with_initial_keys(backend).await;
    let later = t0() + secs(60);
    let state = fx
        .store()
        .revoke_signing_key("a", &signing_key("r"), later, None)
        .await
        .unwrap();
    assert_eq!(state, Some(KeyState::Active));
    let keys = fx.store().list_signing_keys().await.unwrap();
    assert_eq!(
        states(&keys),
        named(&[
            ("a", KeyState::Revoked),
            ("b", KeyState::Active),
            ("r", KeyState::Next),
        ])
    );
    let revoked = keys.iter().find(|k| k.kid == "a").unwrap();
    assert_eq!(revoked.revoked_at, Some(later));
    let promoted = keys.iter().find(|k| k.kid == "b").unwrap();
    assert_eq!(promoted.activated_at, Some(later));
}

async fn revoking_the_next_key_replaces_it(backend: Backend) {
    let fx = with_initial_keys(backend).await;
    let state = fx
        .store()
        .revoke_signing_key("b", &signing_key("r"), t0() + secs(60), None)
        .await
        .unwrap();
    assert_eq!(state, Some(KeyState::Next));
    assert_eq!(
        key_states(&fx).await,
        named(&[
            ("a", KeyState::Active),
            ("b", KeyState::Revoked),
            ("r", KeyState::Next),
        ])
    );
}

async fn revoking_a_retired_key_adds_no_replacement(backend: Backend) {
    let fx = with_initial_keys(backend).await;
    let store = fx.store();
    let rotated = store
        .rotate_signing_keys("b", &signing_key("c"), t0() + secs(60))
        .await
        .unwrap();
    assert_eq!(rotated, KeyRotation::Rotated);
    let state = store
        .revoke_signing_key("a", &signing_key("r"), t0() + secs(120), None)
        .await
        .unwrap();
    assert_eq!(state, Some(KeyState::Retired));
    assert_eq!(
        key_states(&fx).await,
        named(&[
            ("a", KeyState::Revoked),
            ("b", KeyState::Active),
            ("c", KeyState::Next),
        ])
    );
}

async fn revoking_a_revoked_or_unknown_key_changes_nothing(backend: Backend) {
    let fx = with_initial_keys(backend).await;
    let store = fx.store();
    let now = t0();
    let state = store
        .revoke_signing_key("zz", &signing_key("r"), now, None)
        .await
        .unwrap();
    assert_eq!(state, None);
    assert_eq!(
        key_states(&fx).await,
        named(&[("a", KeyState::Active), ("b", KeyState::Next)])
    );
    let state = store
        .revoke_signing_key("b", &signing_key("r"), now + secs(1), None)
        .await
        .unwrap();
    assert_eq!(state, Some(KeyState::Next));
    let state = store
        .revoke_signing_key("b", &signing_key("s"), now + secs(2), None)
        .await
        .unwrap();
    assert_eq!(state, Some(KeyState::Revoked));
    let keys = store.list_signing_keys().await.unwrap();
    assert_eq!(
        states(&keys),
        named(&[
            ("a", KeyState::Active),
            ("b", KeyState::Revoked),
            ("r", KeyState::Next),
        ])
    );
    let revoked = keys.iter().find(|k| k.kid == "b").unwrap();
    assert_eq!(revoked.revoked_at, Some(now + secs(1)));
}

/// Whatever is revoked, in any order, the set keeps exactly one active and one next key.
async fn revocations_keep_the_set_complete(backend: Backend) {
    let fx = with_initial_keys(backend).await;
    let store = fx.store();
    let mut now = t0();
    for (i, kid) in ["a", "b", "r1", "r2", "r3"].iter().enumerate() {
        now += secs(10);
        store
            .revoke_signing_key(kid, &signing_key(&format!("r{}", i + 1)), now, None)
            .await
            .unwrap();
        let keys = store.list_signing_keys().await.unwrap();
        let active = keys.iter().filter(|k| k.state == KeyState::Active).count();
        let next = keys.iter().filter(|k| k.state == KeyState::Next).count();
        assert_eq!((active, next), (1, 1), "after revoking {kid}: {keys:?}");
    }
    assert_eq!(
        fx.count("select count(*) from signing_key where state = 'revoked'")
            .await,
        5
    );
}

fn rewrap(kid: &str, old: &str, new: &str) -> Rewrap {
    Rewrap {
        kid: kid.to_owned(),
        old: old.as_bytes().to_vec(),
        new: new.as_bytes().to_vec(),
    }
}

/// (kid, ciphertext) of every key, and the check.
async fn ciphertexts(fx: &Fixture) -> (Vec<(String, Vec<u8>)>, Option<Vec<u8>>) {
    let mut keys: Vec<_> = fx
        .store()
        .list_signing_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| (k.kid, k.private_key_ciphertext))
        .collect();
    keys.sort();
    (keys, fx.store().find_master_key_check().await.unwrap())
}

/// A master-key rotation replaces every ciphertext at once, or, when any row is not what it
/// was read as (a failure halfway through), none.
async fn rewrapping_keys_is_all_or_nothing(backend: Backend) {
    let fx = with_initial_keys(backend).await;
    let store = fx.store();
    store.add_master_key_check(b"check", t0()).await.unwrap();
    let before = ciphertexts(&fx).await;
    let check = rewrap("", "check", "check 2");
    let cases: [(&str, Rewrap, &[Rewrap]); 4] = [
        (
            "the second key changed meanwhile",
            check.clone(),
            &[
                rewrap("a", "sealed a", "new a"),
                rewrap("b", "stale", "new b"),
            ],
        ),
        (
            "a key was added meanwhile",
            check.clone(),
            &[rewrap("a", "sealed a", "new a")],
        ),
        (
            "the check changed meanwhile",
            rewrap("", "stale", "check 2"),
            &[
                rewrap("a", "sealed a", "new a"),
                rewrap("b", "sealed b", "new b"),
            ],
        ),
        (
            "an unknown kid",
            check.clone(),
            &[
                rewrap("a", "sealed a", "new a"),
                rewrap("z", "sealed b", "new b"),
            ],
        ),
    ];
    for (case, check, keys) in cases {
        assert!(!store.rewrap_keys(&check, keys).await.unwrap(), "{case}");
        assert_eq!(ciphertexts(&fx).await, before, "{case}: something changed");
    }
    let keys = [
        rewrap("a", "sealed a", "new a"),
        rewrap("b", "sealed b", "new b"),
    ];
    assert!(store.rewrap_keys(&check, &keys).await.unwrap());
    assert_eq!(
        ciphertexts(&fx).await,
        (
            vec![
                ("a".into(), b"new a".to_vec()),
                ("b".into(), b"new b".to_vec())
            ],
            Some(b"check 2".to_vec())
        )
    );
    // Kids and states are untouched.
    assert_eq!(
        key_states(&fx).await,
        named(&[("a", KeyState::Active), ("b", KeyState::Next)])
    );
}

/// A key's revocation and its audit event commit together; a key revoked already records
/// nothing.
async fn a_key_revocation_commits_its_audit_event(backend: Backend) {
    let fx = with_initial_keys(backend).await;
    let now = t0();
    let event = super::audit("revoked", now);
    let state = fx
        .store()
        .revoke_signing_key("b", &signing_key("r"), now, Some(&event))
        .await
        .unwrap();
    assert_eq!(state, Some(KeyState::Next));
    assert_eq!(fx.count("select count(*) from audit_event").await, 1);
    for kid in ["b", "zz"] {
        fx.store()
            .revoke_signing_key(kid, &signing_key("s"), now + secs(1), Some(&event))
            .await
            .unwrap();
    }
    assert_eq!(fx.count("select count(*) from audit_event").await, 1);
}

both_backends!(
    rewrapping_keys_is_all_or_nothing,
    a_key_revocation_commits_its_audit_event,
    the_first_master_key_check_stays,
    initial_keys_are_added_once,
    rotation_needs_the_expected_next_key,
    rotation_without_keys_changes_nothing,
    revoking_the_active_key_promotes_the_next,
    revoking_the_next_key_replaces_it,
    revoking_a_retired_key_adds_no_replacement,
    revoking_a_revoked_or_unknown_key_changes_nothing,
    revocations_keep_the_set_complete,
);
