//! Failed-attempt throttling shared by every instance, keyed by a digest. Uses: nothing.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreError;

#[async_trait]
pub trait ThrottleStore: Send + Sync {
    /// Until when `key` is blocked, if it is.
    async fn find_throttle(&self, key: &[u8; 32]) -> Result<Option<OffsetDateTime>, StoreError>;

    /// Counts a failure for `key` within `window` of the first one, and returns the count.
    async fn record_failure(
        &self,
        key: &[u8; 32],
        now: OffsetDateTime,
        window: std::time::Duration,
    ) -> Result<u32, StoreError>;

    async fn block(&self, key: &[u8; 32], until: OffsetDateTime) -> Result<(), StoreError>;

    /// A success forgets past failures.
    async fn clear_failures(&self, key: &[u8; 32]) -> Result<(), StoreError>;

    /// Every key with failures or a block since `since`, with its block: mirrored in memory,
    /// so client authentication needs no round trip.
    async fn list_throttled(
        &self,
        since: OffsetDateTime,
    ) -> Result<Vec<(Vec<u8>, Option<OffsetDateTime>)>, StoreError>;
}
