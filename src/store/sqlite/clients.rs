//! Clients on SQLite: the IMMEDIATE transaction excludes every other writer, so disabling counts the enabled admins without row locks. Uses: model.

use sqlx::{Sqlite, Transaction};

use super::SqliteStore;
use crate::store::StoreError;
use crate::store::sql::clients::{client_store, keep_an_admin};

const ENABLED_ADMINS: &str =
    "select client_id from client where is_admin and not disabled order by client_id";

impl SqliteStore {
    /// Refuses to disable the last enabled admin, counted in the disabling transaction.
    pub(super) async fn keep_an_admin(
        tx: &mut Transaction<'_, Sqlite>,
        client_id: &str,
    ) -> Result<(), StoreError> {
        let admins: Vec<String> = sqlx::query_scalar(ENABLED_ADMINS)
            .fetch_all(&mut **tx)
            .await?;
        keep_an_admin(&admins, client_id)
    }
}

client_store!(SqliteStore);
