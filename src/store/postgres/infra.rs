//! Upkeep on PostgreSQL: migrations that several instances may run at once, and housekeeping by one instance at a time (`ctid` batches). Uses: rows.

use sqlx::migrate::Migrator;
use time::OffsetDateTime;

use super::PgStore;
use crate::store::rows::DbTime;
use crate::store::sql::infra::infra;
use crate::store::{Backend, StoreError};

static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

/// Only one instance at a time runs housekeeping.
const PURGE_LOCK: i64 = 0x7465_7373_7075_7267; // "tesspurg"

/// Retry-window successors past their window: the sealed copy is erased.
const ERASE_SUCCESSORS: &str = "update refresh_token set successor_ciphertext = null where ctid in (
     select ctid from refresh_token where successor_ciphertext is not null and consumed_at < $1 limit $2)";

const PURGE: [&str; 6] = [
    // Tokens idle-expired for a day can no longer matter, not even as reuse evidence.
    "delete from refresh_token where ctid in (
         select ctid from refresh_token where idle_expires_at < $1 - interval '1 day' limit $2)",
    "delete from session where ctid in (
         select ctid from session where expires_at < $1 - interval '1 day'
            or revoked_at < $1 - interval '1 day' limit $2)",
    "delete from revocation where ctid in (select ctid from revocation where expires_at < $1 limit $2)",
    "delete from login_throttle where ctid in (
         select ctid from login_throttle where window_start < $1 - interval '1 day'
            and (blocked_until is null or blocked_until < $1) limit $2)",
    // Codes a day past their expiry: too old even as evidence of a replay.
    "delete from authorization_code where ctid in (
         select ctid from authorization_code where expires_at < $1 - interval '1 day' limit $2)",
    "delete from browser_session where ctid in (
         select ctid from browser_session where expires_at < $1
            or ended_at < $1 - interval '1 day' limit $2)",
];

impl PgStore {
    const BACKEND: Backend = Backend::Postgres;

    async fn run_migrations(&self) -> Result<(), StoreError> {
        let migrator = Migrator {
            migrations: MIGRATOR.migrations.clone(),
            // An instance of the previous release keeps starting while a newer one has already
            // added (backwards-compatible) migrations: a rolling upgrade.
            ignore_missing: true,
            // Several instances starting at once take turns (pg_advisory_lock).
            locking: true,
            no_tx: false,
        };
        migrator.run(&self.pool).await.map_err(StoreError::from)
    }

    async fn purge(
        &self,
        now: OffsetDateTime,
        erase_before: OffsetDateTime,
        batch: u32,
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let locked: bool = sqlx::query_scalar("select pg_try_advisory_xact_lock($1)")
            .bind(PURGE_LOCK)
            .fetch_one(&mut *tx)
            .await?;
        if !locked {
            return Ok(0);
        }
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
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(touched)
    }
}

infra!(PgStore);
