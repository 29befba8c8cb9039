//! Signing keys on SQLite: the IMMEDIATE transaction is the key writers' lock. Uses: model.

use sqlx::{Sqlite, Transaction};

use super::SqliteStore;
use crate::store::StoreError;
use crate::store::sql::keys::key_store;

impl SqliteStore {
    const KEY_STATE_LOCKED: &str = "select state from signing_key where kid = $1";

    /// The write lock is held already.
    async fn lock_keys(_tx: &mut Transaction<'_, Sqlite>) -> Result<(), StoreError> {
        Ok(())
    }

    /// The write lock is held already: always free.
    async fn try_lock_keys(_tx: &mut Transaction<'_, Sqlite>) -> Result<bool, StoreError> {
        Ok(true)
    }
}

key_store!(SqliteStore);
