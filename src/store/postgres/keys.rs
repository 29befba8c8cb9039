//! Signing keys on PostgreSQL: key writers across instances serialise on an advisory lock. Uses: model.

use sqlx::{Postgres, Transaction};

use super::PgStore;
use crate::store::StoreError;
use crate::store::sql::keys::key_store;

/// Serialises signing-key changes across instances (pg_advisory_xact_lock).
const KEY_LOCK: i64 = 0x7465_7373_6b65_7973; // "tesskeys"

impl PgStore {
    const KEY_STATE_LOCKED: &str = "select state from signing_key where kid = $1 for update";

    /// Takes the key lock for this transaction, waiting for it.
    async fn lock_keys(tx: &mut Transaction<'_, Postgres>) -> Result<(), StoreError> {
        sqlx::query("select pg_advisory_xact_lock($1)")
            .bind(KEY_LOCK)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Takes the key lock if it is free: `false` when another instance is changing keys.
    async fn try_lock_keys(tx: &mut Transaction<'_, Postgres>) -> Result<bool, StoreError> {
        Ok(sqlx::query_scalar("select pg_try_advisory_xact_lock($1)")
            .bind(KEY_LOCK)
            .fetch_one(&mut **tx)
            .await?)
    }
}

key_store!(PgStore);
