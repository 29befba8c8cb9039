//! The store's own upkeep: which backend, migrations, readiness, the pool, the master-key check and housekeeping. Uses: nothing.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Sqlite => "sqlite",
        }
    }
}

#[async_trait]
pub trait Infra: Send + Sync {
    fn backend(&self) -> Backend;

    /// Applies pending migrations. Safe to run from several instances at once: PostgreSQL
    /// serialises them with an advisory lock, and applied versions are skipped.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// One round trip, for readiness.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Closes the pool, waiting for checked-out connections to return.
    async fn close(&self);

    /// (open connections, idle ones) in the pool, for the metrics.
    fn pool_connections(&self) -> (u32, usize);

    /// The stored master-key check ciphertext, if the database has one yet.
    async fn find_master_key_check(&self) -> Result<Option<Vec<u8>>, StoreError>;

    /// Stores the check unless one exists, and returns whichever is stored.
    async fn add_master_key_check(
        &self,
        ciphertext: &[u8],
        now: OffsetDateTime,
    ) -> Result<Vec<u8>, StoreError>;

    /// One housekeeping batch, skipped if another instance is doing it: erases successors
    /// whose retry window closed before `erase_before`, and deletes refresh tokens, sessions,
    /// revocations and throttle rows no longer of any use at `now`. Returns rows touched.
    async fn purge_batch(
        &self,
        now: OffsetDateTime,
        erase_before: OffsetDateTime,
        batch: u32,
    ) -> Result<u64, StoreError>;
}
