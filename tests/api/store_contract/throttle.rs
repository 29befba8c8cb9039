//! Login throttling: failures counted per key within a window, blocks, and the list every
//! instance mirrors.

use std::time::Duration;

use super::{Fixture, secs, t0};
use crate::both_backends;
use crate::helpers::Backend;

const WINDOW: Duration = Duration::from_secs(15 * 60);

async fn failures_are_counted_within_a_window(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.store();
    let now = t0();
    let key = [1u8; 32];
    let window = secs(15 * 60);
    assert_eq!(store.record_failure(&key, now, WINDOW).await.unwrap(), 1);
    assert_eq!(
        store
            .record_failure(&key, now + secs(10), WINDOW)
            .await
            .unwrap(),
        2
    );
    // Another key counts apart.
    assert_eq!(
        store
            .record_failure(&[2u8; 32], now + secs(10), WINDOW)
            .await
            .unwrap(),
        1
    );
    // The window is measured from its first failure, inclusive at its end.
    assert_eq!(
        store
            .record_failure(&key, now + window, WINDOW)
            .await
            .unwrap(),
        3
    );
    // Past it, counting starts again, and the new window opens at this failure.
    let reopened = now + window + secs(1);
    assert_eq!(
        store.record_failure(&key, reopened, WINDOW).await.unwrap(),
        1
    );
    assert_eq!(
        store
            .record_failure(&key, reopened + window, WINDOW)
            .await
            .unwrap(),
        2
    );
    assert_eq!(fx.count("select count(*) from login_throttle").await, 2);
}

async fn blocks_hold_until_cleared(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.store();
    let now = t0();
    let key = [1u8; 32];
    let other = [2u8; 32];
    assert_eq!(store.find_throttle(&key).await.unwrap(), None);
    for i in 0..5 {
        store
            .record_failure(&key, now + secs(i), WINDOW)
            .await
            .unwrap();
    }
    store.record_failure(&other, now, WINDOW).await.unwrap();
    // Failures alone are no block.
    assert_eq!(store.find_throttle(&key).await.unwrap(), None);
    let until = now + secs(30);
    store.block(&key, until).await.unwrap();
    assert_eq!(store.find_throttle(&key).await.unwrap(), Some(until));
    assert_eq!(store.find_throttle(&other).await.unwrap(), None);
    // A longer block replaces the shorter one.
    store.block(&key, now + secs(60)).await.unwrap();
    assert_eq!(
        store.find_throttle(&key).await.unwrap(),
        Some(now + secs(60))
    );
    // A success forgets the failures and the block.
    store.clear_failures(&key).await.unwrap();
    assert_eq!(store.find_throttle(&key).await.unwrap(), None);
    assert_eq!(
        store
            .record_failure(&key, now + secs(61), WINDOW)
            .await
            .unwrap(),
        1
    );
    // Clearing an unknown key is harmless; the other key keeps its count.
    store.clear_failures(&[3u8; 32]).await.unwrap();
    assert_eq!(
        store
            .record_failure(&other, now + secs(62), WINDOW)
            .await
            .unwrap(),
        2
    );
}

async fn recent_failures_and_blocks_are_listed(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.store();
    let now = t0();
    let long_ago = now - secs(20 * 60);
    let (stale, blocked, recent) = ([1u8; 32], [2u8; 32], [3u8; 32]);
    store
        .record_failure(&stale, long_ago, WINDOW)
        .await
        .unwrap();
    store
        .record_failure(&blocked, long_ago, WINDOW)
        .await
        .unwrap();
    store.block(&blocked, now + secs(300)).await.unwrap();
    store.record_failure(&recent, now, WINDOW).await.unwrap();
    let since = now - secs(15 * 60);
    let mut listed = store.list_throttled(since).await.unwrap();
    listed.sort();
    assert_eq!(
        listed,
        vec![
            (blocked.to_vec(), Some(now + secs(300))),
            (recent.to_vec(), None),
        ]
    );
    // From the start of the stale window, every key is listed.
    let mut listed = store.list_throttled(long_ago).await.unwrap();
    listed.sort();
    assert_eq!(listed.len(), 3);
    assert_eq!(listed[0], (stale.to_vec(), None));
    // After a clear, the key is gone from the list.
    store.clear_failures(&recent).await.unwrap();
    let listed = store.list_throttled(since).await.unwrap();
    assert_eq!(listed, vec![(blocked.to_vec(), Some(now + secs(300)))]);
}

both_backends!(
    failures_are_counted_within_a_window,
    blocks_hold_until_cleared,
    recent_failures_and_blocks_are_listed,
);
