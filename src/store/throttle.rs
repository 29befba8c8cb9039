//! Failed-attempt throttling shared by every instance, keyed by a digest: an attempt is reserved (counted) before it is verified, then settled. Uses: nothing.

use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreError;

/// One counter an attempt must pass, and its rule: `threshold` attempts within `window` start
/// a block of `first_block`, doubled by each further attempt up to `max_block`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleRule {
    pub key: [u8; 32],
    pub threshold: u32,
    pub window: Duration,
    pub first_block: Duration,
    pub max_block: Duration,
}

impl ThrottleRule {
    /// The block that `attempts` (counted within the window, this one included) earn.
    pub fn block_after(&self, attempts: u32) -> Option<Duration> {
        let over = attempts.checked_sub(self.threshold)?;
        Some(
            self.first_block
                .saturating_mul(1 << over.min(16))
                .min(self.max_block),
        )
    }
}

/// What a reservation came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// Counted on every key; the blocks this attempt started, so a success can lift them.
    Admitted {
        blocks: Vec<([u8; 32], OffsetDateTime)>,
    },
    /// A key is blocked: nothing was counted.
    Refused {
        key: [u8; 32],
        until: OffsetDateTime,
    },
}

#[async_trait]
pub trait ThrottleStore: Send + Sync {
    /// Counts one attempt on every rule's key, in one transaction, unless a key is blocked at
    /// `now` (then nothing is counted). Reaching a threshold blocks that key at once, before
    /// the attempt is verified: parallel attempts get no more tries than sequential ones.
    async fn reserve_attempt(
        &self,
        rules: &[ThrottleRule],
        now: OffsetDateTime,
    ) -> Result<Reservation, StoreError>;

    /// Takes back one admitted attempt on `key`: `forget` clears its count (a success of the
    /// principal from this address), else it is decremented. A block this attempt started
    /// (`own_block`) ends at `now`.
    async fn refund_attempt(
        &self,
        key: &[u8; 32],
        forget: bool,
        own_block: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// Every key whose block changed at or after `since`, with its block: mirrored in memory,
    /// so a blocked key is refused without a round trip. Indexed on the change time.
    async fn list_throttle_changes(
        &self,
        since: OffsetDateTime,
    ) -> Result<Vec<(Vec<u8>, Option<OffsetDateTime>)>, StoreError>;
}
