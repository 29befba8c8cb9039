//! Token Status Lists: concurrent leases take distinct runs, a full list is followed by a new
//! one that nobody leases before it is announced, client blocks are shared, the builder lease
//! has one holder, and a role change marks what was issued.

use std::collections::HashSet;
use std::sync::Arc;

use tessera::model::{RevocationKind, StatusRef};
use tessera::store::{BuilderLease, StatusPurge};

use super::{Fixture, audit, secs, t0};
use crate::both_backends;
use crate::helpers::Backend;

both_backends!(
    concurrent_leases_never_overlap_and_a_full_list_is_followed_by_a_new_one,
    a_client_block_is_recorded_once_and_the_builder_lease_has_one_holder,
    housekeeping_deletes_status_rows_past_their_horizon_and_never_reuses_a_list_id,
    a_build_reads_only_the_tokens_minted_since_the_given_time,
);

/// A list fills for hours: a build reads the sessions' and rotations' tokens that may still be
/// live, not every one the list ever named.
async fn a_build_reads_only_the_tokens_minted_since_the_given_time(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.store();
    let now = t0();
    let long_ago = now - secs(7200);
    let list = store
        .lease_status_indices("k1", 100, 1000, long_ago)
        .await
        .unwrap();
    let (client, user) = fx.principal("web", "alice").await;
    // A login's token (the session row) and a rotation's (the refresh-token row), each minted
    // long ago (entries 1 and 2) and now (entries 3 and 4).
    for (at, idx) in [(long_ago, 1), (now, 3)] {
        let mut session = super::session(&client, &user, at);
        session.status = Some(StatusRef {
            list_id: list.list_id,
            idx,
        });
        let mut first = super::token(&session, idx as u8, at);
        first.access_status = Some(StatusRef {
            list_id: list.list_id,
            idx: idx + 1,
        });
        store.add_session(&session, Some(&first)).await.unwrap();
    }
    let entries = |since| async move {
        let mut idx: Vec<i64> = store
            .status_inputs(list.list_id, now, since)
            .await
            .unwrap()
            .sessions
            .iter()
            .map(|s| s.idx)
            .collect();
        idx.sort_unstable();
        idx
    };
    assert_eq!(entries(now - secs(600)).await, [3, 4]);
    assert_eq!(
        entries(now).await,
        [3, 4],
        "minted at the bound: still read"
    );
    assert_eq!(entries(long_ago).await, [1, 2, 3, 4]);
}

async fn concurrent_leases_never_overlap_and_a_full_list_is_followed_by_a_new_one(
    backend: Backend,
) {
    let fx = Arc::new(Fixture::new(backend).await);
    let now = t0();
    let first = fx
        .store()
        .lease_status_indices("k1", 10, 100, now)
        .await
        .unwrap();
    assert!(first.created);
    // Not announced yet: a second lease does not take from it, it creates its own list.
    let unannounced = fx
        .store()
        .lease_status_indices("k1", 10, 100, now)
        .await
        .unwrap();
    assert!(unannounced.created);
    assert_ne!(unannounced.list_id, first.list_id);
    fx.store()
        .store_status_list(unannounced.list_id, "jwt", "etag", 0, now)
        .await
        .unwrap();
    // Eight leases race for the remaining 90 entries of the announced list.
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let fx = Arc::clone(&fx);
            tokio::spawn(async move {
                fx.store()
                    .lease_status_indices("k1", 10, 100, now)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut taken = HashSet::new();
    for task in tasks {
        let lease = task.await.unwrap();
        assert!(!lease.created);
        assert_eq!(lease.list_id, unannounced.list_id);
        for idx in lease.start..lease.start + 10 {
            assert!(taken.insert(idx), "index {idx} handed out twice");
        }
    }
    assert_eq!(taken.len(), 80);
    assert!(taken.iter().all(|i| (10..90).contains(i)));
    let last = fx
        .store()
        .lease_status_indices("k1", 10, 100, now)
        .await
        .unwrap();
    assert_eq!((last.list_id, last.start), (unannounced.list_id, 90));
    // Full: the next lease creates a new list; another key has its own lists.
    let next = fx
        .store()
        .lease_status_indices("k1", 10, 100, now)
        .await
        .unwrap();
    assert!(next.created && next.list_id > unannounced.list_id);
    let other = fx
        .store()
        .lease_status_indices("k2", 10, 100, now)
        .await
        .unwrap();
    assert!(other.created && other.list_id != next.list_id);
}

async fn a_client_block_is_recorded_once_and_the_builder_lease_has_one_holder(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.store();
    let now = t0();
    let list = store
        .lease_status_indices("k1", 120, 1000, now)
        .await
        .unwrap();
    store
        .store_status_list(list.list_id, "jwt", "etag", 0, now)
        .await
        .unwrap();
    let base = store
        .add_status_block(list.list_id, "web", 600, 0, now)
        .await
        .unwrap();
    assert_eq!(base, 0);
    // Another instance's block for the same client and minute loses: the first one stands.
    let again = store
        .add_status_block(list.list_id, "web", 600, 60, now)
        .await
        .unwrap();
    assert_eq!(again, 0);
    let inputs = store.status_inputs(list.list_id, now, now).await.unwrap();
    assert_eq!(inputs.blocks.len(), 1);

    let until = now + secs(10);
    assert_eq!(
        store.acquire_status_builder("a", now, until).await.unwrap(),
        BuilderLease::Acquired
    );
    assert_eq!(
        store.acquire_status_builder("b", now, until).await.unwrap(),
        BuilderLease::HeldElsewhere
    );
    assert_eq!(
        store
            .acquire_status_builder("a", now + secs(5), until + secs(5))
            .await
            .unwrap(),
        BuilderLease::Acquired,
        "the holder renews"
    );
    assert_eq!(
        store
            .acquire_status_builder("b", now + secs(16), now + secs(26))
            .await
            .unwrap(),
        BuilderLease::Acquired,
        "a lapsed lease is taken over"
    );
}

async fn housekeeping_deletes_status_rows_past_their_horizon_and_never_reuses_a_list_id(
    backend: Backend,
) {
    let fx = Fixture::new(backend).await;
    let store = fx.store();
    let now = t0();
    let long_ago = now - secs(7200);
    let recently = now - secs(10);
    // k1's old list, filled and last leased two hours ago; then its current one.
    let old = store
        .lease_status_indices("k1", 1000, 1000, long_ago)
        .await
        .unwrap();
    store
        .store_status_list(old.list_id, "old", "e1", 0, long_ago)
        .await
        .unwrap();
    let current = store
        .lease_status_indices("k1", 120, 1000, recently)
        .await
        .unwrap();
    assert!(current.created);
    store
        .store_status_list(current.list_id, "current", "e2", 0, recently)
        .await
        .unwrap();
    let minute = |at: time::OffsetDateTime| {
        let s = at.unix_timestamp();
        s - s.rem_euclid(60)
    };
    // Blocks: the old list's and an old one of the current list go, a recent one stays.
    for (list_id, period, base) in [
        (old.list_id, minute(long_ago), 0),
        (current.list_id, minute(long_ago), 0),
        (current.list_id, minute(recently), 60),
    ] {
        store
            .add_status_block(list_id, "web", period, base, now)
            .await
            .unwrap();
    }
    // Marks: old ones go, a recent one stays; the old list's recent mark goes with its list.
    let mark = |list_id, idx, value: &'static str, at| {
        let event = audit("token_revoked", at);
        async move {
            store
                .add_revocation(
                    RevocationKind::Jti,
                    value,
                    at,
                    at + secs(300),
                    &event,
                    Some(StatusRef { list_id, idx }),
                )
                .await
                .unwrap();
        }
    };
    mark(old.list_id, 7, "j1", long_ago).await;
    mark(current.list_id, 5, "j2", long_ago).await;
    mark(current.list_id, 6, "j3", recently).await;
    mark(old.list_id, 8, "j4", recently).await;

    let hour_ago = now - secs(3600);
    let horizon = StatusPurge {
        blocks_started_before: hour_ago.unix_timestamp(),
        marks_before: hour_ago,
        lists_leased_before: hour_ago,
    };
    // 2 blocks, 2 marks, 1 list (taking its remaining mark with it).
    assert_eq!(store.purge_status_lists(&horizon, 100).await.unwrap(), 5);
    assert_eq!(store.purge_status_lists(&horizon, 100).await.unwrap(), 0);
    assert_eq!(store.find_status_list(old.list_id).await.unwrap(), None);
    assert!(
        store
            .find_status_list(current.list_id)
            .await
            .unwrap()
            .is_some()
    );
    let kept = store
        .status_inputs(current.list_id, now, now)
        .await
        .unwrap();
    assert_eq!(kept.blocks.len(), 1);
    assert_eq!(kept.blocks[0].base, 60);
    assert_eq!(kept.marks, [6]);
    assert_eq!(fx.count("select count(*) from status_mark").await, 1);
    assert_eq!(fx.count("select count(*) from status_block").await, 1);

    // A lease keeps a list: leasing from it moves its horizon.
    let leased = store
        .lease_status_indices("k1", 10, 1000, now)
        .await
        .unwrap();
    assert_eq!(leased.list_id, current.list_id);
    let later = StatusPurge {
        lists_leased_before: now,
        ..horizon
    };
    assert_eq!(store.purge_status_lists(&later, 100).await.unwrap(), 0);

    // Once every list of k1 is gone, the next lease creates a list under an id never used
    // before (SQLite would reuse the highest rowid without autoincrement).
    let everything = StatusPurge {
        lists_leased_before: now + secs(1),
        ..horizon
    };
    assert_eq!(store.purge_status_lists(&everything, 100).await.unwrap(), 1);
    let fresh = store
        .lease_status_indices("k1", 10, 1000, now)
        .await
        .unwrap();
    assert!(fresh.created);
    assert!(fresh.list_id > current.list_id);
    assert_eq!(fresh.start, 0);
}
