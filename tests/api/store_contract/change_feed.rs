//! The change feed: each write bumps the version of its topic (and only then), and on
//! PostgreSQL a listener hears the topic.

use std::collections::BTreeMap;
use std::time::Duration;

use tessera::model::{ClientSecretHash, RevocationKind};
use tessera::store::{ChangeListener, topic};

use super::{Fixture, audit, client, secs, signing_key, t0, token, user};
use crate::both_backends;
use crate::helpers::Backend;
use tessera::store::{Consumed, KeyRotation, KeysAdded, SessionAdded, Update};

type Versions = BTreeMap<String, i64>;

async fn versions(fx: &Fixture) -> Versions {
    fx.store()
        .change_versions()
        .await
        .unwrap()
        .into_iter()
        .collect()
}

/// `after` is `before` with exactly the named topics bumped by the given amounts.
fn assert_bumped(before: &Versions, after: &Versions, bumps: &[(&str, i64)], what: &str) {
    let mut expected = before.clone();
    for (topic, by) in bumps {
        *expected.get_mut(*topic).expect("a known topic") += by;
    }
    assert_eq!(after, &expected, "{what}");
}

/// Runs one write and checks which topics it bumped.
macro_rules! bumps {
    ($fx:expr, $bumps:expr, $what:literal, $write:expr) => {{
        let before = versions($fx).await;
        $write;
        assert_bumped(&before, &versions($fx).await, $bumps, $what);
    }};
}

async fn every_topic_starts_at_zero(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let expected: Versions = [
        (topic::CLIENTS, 0),
        (topic::KEYS, 0),
        (topic::REVOCATIONS, 0),
        ("users", 0),
    ]
    .into_iter()
    .map(|(t, v)| (t.to_owned(), v))
    .collect();
    assert_eq!(versions(&fx).await, expected);
}

async fn key_writes_bump_the_keys_topic(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.store();
    let now = t0();
    let keys = &[(topic::KEYS, 1)];
    bumps!(
        &fx,
        keys,
        "initial keys",
        store
            .add_initial_signing_keys(&signing_key("a"), &signing_key("b"), now)
            .await
            .unwrap()
    );
    bumps!(
        &fx,
        &[],
        "initial keys again",
        store
            .add_initial_signing_keys(&signing_key("c"), &signing_key("d"), now)
            .await
            .unwrap()
    );
    bumps!(
        &fx,
        &[],
        "a stale rotation",
        store
            .rotate_signing_keys("a", &signing_key("c"), now)
            .await
            .unwrap()
    );
    bumps!(
        &fx,
        keys,
        "a rotation",
        store
            .rotate_signing_keys("b", &signing_key("c"), now)
            .await
            .unwrap()
    );
    bumps!(
        &fx,
        &[],
        "revoking an unknown key",
        store
            .revoke_signing_key("zz", &signing_key("r"), now, None)
            .await
            .unwrap()
    );
    bumps!(
        &fx,
        keys,
        "revoking the active key",
        store
            .revoke_signing_key("b", &signing_key("r"), now, None)
            .await
            .unwrap()
    );
    bumps!(
        &fx,
        keys,
        "revoking a retired key",
        store
            .revoke_signing_key("a", &signing_key("s"), now, None)
            .await
            .unwrap()
    );
    bumps!(
        &fx,
        &[],
        "revoking a revoked key",
        store
            .revoke_signing_key("a", &signing_key("s"), now, None)
            .await
            .unwrap()
    );
    bumps!(
        &fx,
        &[],
        "the master-key check",
        store.add_master_key_check(b"check", now).await.unwrap()
    );
}

async fn client_writes_bump_the_clients_topic(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.store();
    let now = t0();
    let clients = &[(topic::CLIENTS, 1)];
    let secret = ClientSecretHash::Digest([9; 32]);
    bumps!(
        &fx,
        clients,
        "a new client",
        store.add_client(&client("web", now)).await.unwrap()
    );
    bumps!(
        &fx,
        &[],
        "a conflicting client",
        store.add_client(&client("web", now)).await.unwrap_err()
    );
    bumps!(
        &fx,
        clients,
        "a new secret",
        store
            .update_client_secret("web", &super::replace(&secret), now)
            .await
            .unwrap()
    );
    bumps!(
        &fx,
        &[],
        "an unknown client's secret",
        store
            .update_client_secret("nobody", &super::replace(&secret), now)
            .await
            .unwrap()
    );
    bumps!(
        &fx,
        clients,
        "disabling",
        store
            .update_client("web", &super::disabling(true), &[], now)
            .await
            .unwrap()
    );
    bumps!(
        &fx,
        clients,
        "enabling",
        store
            .update_client("web", &super::disabling(false), &[], now)
            .await
            .unwrap()
    );
    let mut used = tessera::model::ClientUsage::default();
    used.used(now);
    used.issued("read", now);
    bumps!(
        &fx,
        &[],
        "recording use (no instance keeps it in memory)",
        store
            .record_client_usage(&[("web".to_owned(), used)])
            .await
            .unwrap()
    );
    bumps!(
        &fx,
        &[],
        "disabling an unknown client",
        store
            .update_client("nobody", &super::disabling(true), &[], now)
            .await
            .unwrap()
    );
    let event = audit("client_revoked", now);
    bumps!(
        &fx,
        &[(topic::REVOCATIONS, 1)],
        "revoking a client",
        store
            .revoke_principal(
                RevocationKind::Client,
                "web",
                false,
                now,
                now + secs(60),
                &event
            )
            .await
            .unwrap()
    );
    bumps!(
        &fx,
        &[(topic::REVOCATIONS, 1), (topic::CLIENTS, 1)],
        "revoking and disabling a client",
        store
            .revoke_principal(
                RevocationKind::Client,
                "web",
                true,
                now,
                now + secs(60),
                &event
            )
            .await
            .unwrap()
    );
}

async fn revocation_writes_bump_the_revocations_topic(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (client, alice) = fx.principal("web", "alice").await;
    let store = fx.store();
    let now = t0();
    let session = fx.session(&client, &alice, 1, now).await;
    let revocations = &[(topic::REVOCATIONS, 1)];
    let event = audit("revoked", now);
    bumps!(
        &fx,
        revocations,
        "a jti",
        store
            .add_revocation(
                RevocationKind::Jti,
                "jti-1",
                now,
                now + secs(60),
                &event,
                None
            )
            .await
            .unwrap()
    );
    bumps!(
        &fx,
        revocations,
        "a session",
        store
            .revoke_session(session.session_id, "logout", now, now + secs(60), None)
            .await
            .unwrap()
    );
    bumps!(
        &fx,
        &[],
        "a revoked session again",
        store
            .revoke_session(session.session_id, "logout", now, now + secs(60), None)
            .await
            .unwrap()
    );
    let alice_id = alice.user_id.to_string();
    bumps!(
        &fx,
        revocations,
        "revoking and disabling a user",
        store
            .revoke_principal(
                RevocationKind::Subject,
                &alice_id,
                true,
                now,
                now + secs(60),
                &event
            )
            .await
            .unwrap()
    );
}

async fn user_session_audit_and_throttle_writes_announce_nothing(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.store();
    let now = t0();
    let web = client("web", now);
    let before = versions(&fx).await;
    store.add_client(&web).await.unwrap();
    let after_client = versions(&fx).await;
    assert_bumped(&before, &after_client, &[(topic::CLIENTS, 1)], "a client");
    let alice = user("alice", now);
    store.add_user(&alice, &[]).await.unwrap();
    store
        .update_user(alice.user_id, Some(false), Some("$new"), now)
        .await
        .unwrap()
        .unwrap();
    let session = super::session(&web, &alice, now);
    let added = store
        .add_session(&session, Some(&token(&session, 1, now)))
        .await
        .unwrap();
    assert_eq!(added, SessionAdded::Added);
    let rotated = super::rotate(store, super::rotation(&session, 1, 2, now)).await;
    assert_eq!(rotated, Consumed::Rotated);
    store
        .add_audit_event(&audit("login_failed", now))
        .await
        .unwrap();
    let rule = tessera::store::ThrottleRule {
        key: [1; 32],
        threshold: 1,
        window: Duration::from_secs(60),
        first_block: Duration::from_secs(30),
        max_block: Duration::from_secs(30),
    };
    store.reserve_attempt(&[rule], now).await.unwrap();
    store
        .refund_attempt(&[1; 32], true, Some(now + secs(30)), now)
        .await
        .unwrap();
    store.purge_batch(now, now, 100).await.unwrap();
    assert_eq!(versions(&fx).await, after_client);
}

async fn hear(listener: &mut Box<dyn ChangeListener>) -> String {
    tokio::time::timeout(Duration::from_secs(10), listener.recv())
        .await
        .expect("a notification within 10 s")
        .unwrap()
}

/// PostgreSQL announces each topic to every instance; SQLite (one instance) has no listener.
async fn a_listener_hears_each_topic(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.store();
    let listener = store.change_listener().await.unwrap();
    let Some(mut listener) = listener else {
        assert_eq!(backend, Backend::Sqlite);
        return;
    };
    assert_eq!(backend, Backend::Postgres);
    let now = t0();
    store.add_client(&client("web", now)).await.unwrap();
    assert_eq!(hear(&mut listener).await, topic::CLIENTS);
    let added = store
        .add_initial_signing_keys(&signing_key("a"), &signing_key("b"), now)
        .await
        .unwrap();
    assert_eq!(added, KeysAdded::Added);
    assert_eq!(hear(&mut listener).await, topic::KEYS);
    store
        .add_revocation(
            RevocationKind::Jti,
            "jti-1",
            now,
            now + secs(60),
            &audit("revoked", now),
            None,
        )
        .await
        .unwrap();
    assert_eq!(hear(&mut listener).await, topic::REVOCATIONS);
    // Revoking and disabling a client announces both, in the order written.
    store
        .revoke_principal(
            RevocationKind::Client,
            "web",
            true,
            now,
            now + secs(60),
            &audit("revoked", now),
        )
        .await
        .unwrap();
    assert_eq!(hear(&mut listener).await, topic::CLIENTS);
    assert_eq!(hear(&mut listener).await, topic::REVOCATIONS);
    // A write that changes nothing announces nothing: the next topic heard is the next write's.
    let rotated = store
        .rotate_signing_keys("zz", &signing_key("c"), now)
        .await
        .unwrap();
    assert_eq!(rotated, KeyRotation::Skipped);
    let updated = store
        .update_client("web", &super::disabling(false), &[], now)
        .await
        .unwrap();
    assert_eq!(updated, Update::Done);
    assert_eq!(hear(&mut listener).await, topic::CLIENTS);
}

both_backends!(
    every_topic_starts_at_zero,
    key_writes_bump_the_keys_topic,
    client_writes_bump_the_clients_topic,
    revocation_writes_bump_the_revocations_topic,
    user_session_audit_and_throttle_writes_announce_nothing,
    a_listener_hears_each_topic,
);
