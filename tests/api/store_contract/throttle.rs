//! Login throttling: attempts reserved per key within a window (all keys or none), blocks
//! started at a threshold, refunds, and the changes every instance mirrors.

use std::time::Duration;

use tessera::store::{Reservation, ThrottleRule};

use super::{Fixture, secs, t0};
use crate::both_backends;
use crate::helpers::Backend;

const WINDOW: Duration = Duration::from_secs(15 * 60);

fn rule(key: u8, threshold: u32) -> ThrottleRule {
    ThrottleRule {
        key: [key; 32],
        threshold,
        window: WINDOW,
        first_block: Duration::from_secs(30),
        max_block: Duration::from_secs(15 * 60),
    }
}

/// The count stored for the key `[key; 32]` (0 without a row).
async fn failures(fx: &Fixture, key: u8) -> i64 {
    let hex = format!("{key:02x}").repeat(32);
    let literal = match fx.db.backend {
        Backend::Postgres => format!("'\\x{hex}'::bytea"),
        Backend::Sqlite => format!("x'{hex}'"),
    };
    fx.count(&format!(
        "select coalesce(sum(failures), 0) from login_throttle where throttle_key = {literal}"
    ))
    .await
}

async fn attempts_are_counted_within_a_window(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.store();
    let now = t0();
    let counted = |key: u8| failures(&fx, key);
    let admitted = Reservation::Admitted { blocks: Vec::new() };
    for n in 0..3 {
        let at = now + secs(n);
        assert_eq!(
            store.reserve_attempt(&[rule(1, 5)], at).await.unwrap(),
            admitted
        );
    }
    assert_eq!(counted(1).await, 3);
    // The window is measured from its first attempt, inclusive at its end; past it, counting
    // starts again.
    let end = now + secs(15 * 60);
    store.reserve_attempt(&[rule(1, 5)], end).await.unwrap();
    assert_eq!(counted(1).await, 4);
    store
        .reserve_attempt(&[rule(1, 5)], end + secs(1))
        .await
        .unwrap();
    assert_eq!(counted(1).await, 1);
    // Several keys count together, each on its own.
    store
        .reserve_attempt(&[rule(2, 5), rule(1, 5)], end + secs(2))
        .await
        .unwrap();
    assert_eq!((counted(1).await, counted(2).await), (2, 1));
}

async fn a_threshold_blocks_before_the_next_attempt_and_a_block_counts_nothing(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.store();
    let now = t0();
    for _ in 0..2 {
        store
            .reserve_attempt(&[rule(1, 3), rule(2, 100)], now)
            .await
            .unwrap();
    }
    // The third attempt is admitted and starts the block itself.
    assert_eq!(
        store
            .reserve_attempt(&[rule(1, 3), rule(2, 100)], now)
            .await
            .unwrap(),
        Reservation::Admitted {
            blocks: vec![([1; 32], now + secs(30))]
        }
    );
    // The fourth is refused, and counted on no key.
    assert_eq!(
        store
            .reserve_attempt(&[rule(2, 100), rule(1, 3)], now + secs(1))
            .await
            .unwrap(),
        Reservation::Refused {
            key: [1; 32],
            until: now + secs(30)
        }
    );
    assert_eq!(failures(&fx, 2).await, 3);
    // After the block, one more attempt doubles it.
    assert_eq!(
        store
            .reserve_attempt(&[rule(1, 3)], now + secs(30))
            .await
            .unwrap(),
        Reservation::Admitted {
            blocks: vec![([1; 32], now + secs(90))]
        }
    );
}

async fn a_refund_takes_back_one_attempt_and_the_block_it_started(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.store();
    let now = t0();
    let failures = |key: u8| failures(&fx, key);
    for _ in 0..2 {
        store.reserve_attempt(&[rule(1, 3)], now).await.unwrap();
    }
    let Reservation::Admitted { blocks } = store.reserve_attempt(&[rule(1, 3)], now).await.unwrap()
    else {
        panic!("admitted");
    };
    let own = blocks.first().map(|(_, until)| *until);
    store
        .refund_attempt(&[1; 32], false, own, now + secs(1))
        .await
        .unwrap();
    assert_eq!(failures(1).await, 2);
    assert!(matches!(
        store
            .reserve_attempt(&[rule(1, 3)], now + secs(2))
            .await
            .unwrap(),
        Reservation::Admitted { .. }
    ));
    // Forgetting clears the count; another's block is left alone.
    store
        .refund_attempt(&[1; 32], true, Some(now), now + secs(3))
        .await
        .unwrap();
    assert_eq!(failures(1).await, 0);
    assert!(matches!(
        store
            .reserve_attempt(&[rule(1, 3)], now + secs(4))
            .await
            .unwrap(),
        Reservation::Refused { .. }
    ));
    // Unknown keys are harmless; counts never go below zero.
    store
        .refund_attempt(&[9; 32], false, None, now)
        .await
        .unwrap();
    store.reserve_attempt(&[rule(2, 3)], now).await.unwrap();
    for _ in 0..3 {
        store
            .refund_attempt(&[2; 32], false, None, now)
            .await
            .unwrap();
    }
    assert_eq!(failures(2).await, 0);
}

async fn only_blocks_changed_since_are_listed(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.store();
    let now = t0();
    // Attempts without a block are never listed.
    store.reserve_attempt(&[rule(1, 5)], now).await.unwrap();
    store.reserve_attempt(&[rule(2, 1)], now).await.unwrap();
    store
        .reserve_attempt(&[rule(3, 1)], now + secs(60))
        .await
        .unwrap();
    let mut listed = store.list_throttle_changes(now).await.unwrap();
    listed.sort();
    assert_eq!(
        listed,
        [
            (vec![2; 32], Some(now + secs(30))),
            (vec![3; 32], Some(now + secs(90)))
        ]
    );
    assert_eq!(
        store.list_throttle_changes(now + secs(1)).await.unwrap(),
        [(vec![3; 32], Some(now + secs(90)))]
    );
    // A lifted block is a change too: it is listed as ended.
    store
        .refund_attempt(&[3; 32], true, Some(now + secs(90)), now + secs(61))
        .await
        .unwrap();
    assert_eq!(
        store.list_throttle_changes(now + secs(61)).await.unwrap(),
        [(vec![3; 32], Some(now + secs(61)))]
    );
}

both_backends!(
    attempts_are_counted_within_a_window,
    a_threshold_blocks_before_the_next_attempt_and_a_block_counts_nothing,
    a_refund_takes_back_one_attempt_and_the_block_it_started,
    only_blocks_changed_since_are_listed,
);
