//! Token Status Lists: concurrent leases take distinct runs, a full list is followed by a new
//! one that nobody leases before it is announced, client blocks are shared, the builder lease
//! has one holder, and a role change marks what was issued.

use std::collections::HashSet;
use std::sync::Arc;

use tessera::store::BuilderLease;

use super::{Fixture, secs, t0};
use crate::both_backends;
use crate::helpers::Backend;

both_backends!(
    concurrent_leases_never_overlap_and_a_full_list_is_followed_by_a_new_one,
    a_client_block_is_recorded_once_and_the_builder_lease_has_one_holder,
);

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
    let inputs = store.status_inputs(list.list_id, now).await.unwrap();
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
