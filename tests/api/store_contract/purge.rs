//! Housekeeping: one purge batch erases sealed successors past their retry window and deletes
//! what can no longer matter, and nothing else.

use std::time::Duration as StdDuration;

use tessera::model::{NewRefreshToken, RevocationKind, Session};
use time::Duration;

use super::{Fixture, audit, digest, rotate, rotation, secs, t0, token};
use crate::both_backends;
use crate::helpers::Backend;
use tessera::store::{Consumed, SessionAdded, SessionRevocation};

const WINDOW: StdDuration = StdDuration::from_secs(15 * 60);

async fn a_batch_removes_only_what_is_of_no_use(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (client, alice) = fx.principal("web", "alice").await;
    let store = fx.store();
    let now = t0();
    let day = Duration::days(1);

    // Expired two days ago, with a token idle since: both go.
    let expired = Session {
        expires_at: now - 2 * day,
        ..super::session(&client, &alice, now - 3 * day)
    };
    let added = store
        .add_session(&expired, Some(&token(&expired, 1, now - 3 * day)))
        .await
        .unwrap();
    assert_eq!(added, SessionAdded::Added);

    // Live, rotated ten minutes ago: the sealed successor is erased, the tokens stay.
    let live = fx.session(&client, &alice, 2, now - secs(3600)).await;
    let rotated = rotate(store, rotation(&live, 2, 3, now - secs(600))).await;
    assert_eq!(rotated, Consumed::Rotated);

    // Revoked two days ago: the session goes (and its token with it), its revocation stays
    // while in force.
    let ended = super::session(&client, &alice, now - 3 * day);
    let lasting = NewRefreshToken {
        idle_expires_at: now + day,
        ..token(&ended, 4, now - 3 * day)
    };
    let added = store.add_session(&ended, Some(&lasting)).await.unwrap();
    assert_eq!(added, SessionAdded::Added);
    let revoked = store
        .revoke_session(
            ended.session_id,
            "logout",
            now - 2 * day,
            now + secs(3600),
            None,
        )
        .await
        .unwrap();
    assert_eq!(revoked, SessionRevocation::Revoked);

    // One revocation expired, one in force.
    let event = audit("token_revoked", now);
    store
        .add_revocation(
            RevocationKind::Jti,
            "expired",
            now - day,
            now - secs(1),
            &event,
            None,
        )
        .await
        .unwrap();
    store
        .add_revocation(
            RevocationKind::Jti,
            "in force",
            now,
            now + secs(3600),
            &event,
            None,
        )
        .await
        .unwrap();

    // Throttle rows: stale, blocked for another hour, and blocked long ago.
    let (stale, blocked, was_blocked) = ([1u8; 32], [2u8; 32], [3u8; 32]);
    let rule = |key: [u8; 32], threshold, block: Duration| tessera::store::ThrottleRule {
        key,
        threshold,
        window: WINDOW,
        first_block: StdDuration::try_from(block).unwrap(),
        max_block: StdDuration::try_from(block).unwrap(),
    };
    let rules = [
        rule(stale, 2, secs(1)),
        rule(blocked, 1, 3 * day + secs(3600)),
        rule(was_blocked, 1, day),
    ];
    store.reserve_attempt(&rules, now - 3 * day).await.unwrap();

    let touched = store.purge_batch(now, now - secs(300), 100).await.unwrap();
    // 1 successor erased, 1 idle token, 2 sessions, 1 revocation, 2 throttle rows.
    assert_eq!(touched, 7);

    assert_eq!(fx.count("select count(*) from session").await, 1);
    assert_eq!(
        fx.count(&format!(
            "select count(*) from session where session_id = '{}'",
            live.session_id
        ))
        .await,
        1
    );
    assert_eq!(fx.count("select count(*) from refresh_token").await, 2);
    assert_eq!(
        fx.count("select count(*) from refresh_token where successor_ciphertext is not null")
            .await,
        0
    );
    let revocations: Vec<_> = store
        .list_revocations(0, now, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.value)
        .collect();
    assert_eq!(
        revocations,
        [ended.session_id.to_string(), "in force".to_owned()]
    );
    assert_eq!(fx.count("select count(*) from revocation").await, 2);
    assert_eq!(fx.count("select count(*) from login_throttle").await, 1);
    assert_eq!(
        store.list_throttle_changes(now - 4 * day).await.unwrap(),
        [(blocked.to_vec(), Some(now + secs(3600)))]
    );
    // Users, clients and the audit log are never purged.
    assert_eq!(fx.count("select count(*) from user_account").await, 1);
    assert_eq!(fx.count("select count(*) from client").await, 1);
    assert_eq!(
        fx.count("select count(*) from audit_event where event_type <> 'refresh'")
            .await,
        2
    );
    // The live family still rotates.
    assert!(
        store
            .find_refresh_token(live.session_id, &digest(3))
            .await
            .unwrap()
            .is_some()
    );
    let rotated = rotate(store, rotation(&live, 3, 5, now)).await;
    assert_eq!(rotated, Consumed::Rotated);

    // Nothing is left to do.
    assert_eq!(
        store.purge_batch(now, now - secs(300), 100).await.unwrap(),
        0
    );
}

/// A successor's sealed copy is kept for the whole retry window: erased only when it was
/// consumed before `erase_before`.
async fn sealed_successors_stay_within_the_window(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (client, alice) = fx.principal("web", "alice").await;
    let store = fx.store();
    let now = t0();
    let session = fx.session(&client, &alice, 1, now - secs(60)).await;
    let rotated = rotate(store, rotation(&session, 1, 2, now - secs(30))).await;
    assert_eq!(rotated, Consumed::Rotated);
    let sealed = "select count(*) from refresh_token where successor_ciphertext is not null";
    assert_eq!(
        store.purge_batch(now, now - secs(30), 100).await.unwrap(),
        0
    );
    assert_eq!(fx.count(sealed).await, 1);
    assert_eq!(
        store.purge_batch(now, now - secs(29), 100).await.unwrap(),
        1
    );
    assert_eq!(fx.count(sealed).await, 0);
}

async fn a_batch_is_bounded(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.store();
    let now = t0();
    for jti in ["a", "b", "c"] {
        store
            .add_revocation(
                RevocationKind::Jti,
                jti,
                now - secs(60),
                now - secs(1),
                &audit("token_revoked", now),
                None,
            )
            .await
            .unwrap();
    }
    assert_eq!(store.purge_batch(now, now, 2).await.unwrap(), 2);
    assert_eq!(fx.count("select count(*) from revocation").await, 1);
    assert_eq!(store.purge_batch(now, now, 2).await.unwrap(), 1);
    assert_eq!(store.purge_batch(now, now, 2).await.unwrap(), 0);
    assert_eq!(fx.count("select count(*) from revocation").await, 0);
}

both_backends!(
    a_batch_removes_only_what_is_of_no_use,
    sealed_successors_stay_within_the_window,
    a_batch_is_bounded,
);
