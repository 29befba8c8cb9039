//! Upkeep on SQLite: plain migrations (one instance), and housekeeping in `rowid` batches with times in milliseconds. Uses: rows.

use sqlx::migrate::Migrator;
use time::OffsetDateTime;

use super::SqliteStore;
use crate::store::rows::DbTime;
use crate::store::sql::infra::infra;
use crate::store::{Backend, StoreError};

static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

/// A day in the milliseconds times are stored in.
const DAY_MS: i64 = 86_400_000;

/// Retry-window successors past their window: the sealed copy is erased.
const ERASE_SUCCESSORS: &str = "update refresh_token set successor_ciphertext = null where rowid in (
     select rowid from refresh_token where successor_ciphertext is not null and consumed_at < $1 limit $2)";

const PURGE: [&str; 6] = [
    // Tokens idle-expired for a day can no longer matter, not even as reuse evidence.
    "delete from refresh_token where rowid in (
         select rowid from refresh_token where idle_expires_at < $1 - $3 limit $2)",
    "delete from session where rowid in (
         select rowid from session where expires_at < $1 - $3 or revoked_at < $1 - $3 limit $2)",
    "delete from revocation where rowid in (select rowid from revocation where expires_at < $1 limit $2)",
    "delete from login_throttle where rowid in (
         select rowid from login_throttle where window_start < $1 - $3
            and (blocked_until is null or blocked_until < $1) limit $2)",
    // Codes a day past their expiry: too old even as evidence of a replay.
    "delete from authorization_code where rowid in (
         select rowid from authorization_code where expires_at < $1 - $3 limit $2)",
    "delete from browser_session where rowid in (
         select rowid from browser_session where expires_at < $1 or ended_at < $1 - $3 limit $2)",
];

impl SqliteStore {
    const BACKEND: Backend = Backend::Sqlite;

    async fn run_migrations(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await.map_err(StoreError::from)
    }

    async fn purge(
        &self,
        now: OffsetDateTime,
        erase_before: OffsetDateTime,
        batch: u32,
    ) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let limit = i64::from(batch);
        let mut touched = sqlx::query(ERASE_SUCCESSORS)
            .bind(DbTime(erase_before))
            .bind(limit)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        for statement in PURGE {
            touched += sqlx::query(statement)
                .bind(DbTime(now))
                .bind(limit)
                .bind(DAY_MS)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(touched)
    }
}

infra!(SqliteStore);
