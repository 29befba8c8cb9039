//! Clients on SQLite: the IMMEDIATE transaction excludes every other writer, so disabling counts the enabled admins without row locks. Uses: model.

use sqlx::{Sqlite, Transaction};

use super::SqliteStore;
use crate::store::StoreError;
use crate::store::sql::clients::{client_store, keep_an_admin};

const ENABLED_ADMINS: &str =
    "select client_id from client where is_admin and not disabled order by client_id";

impl SqliteStore {
    /// The later of the stored and the recorded time (max() of a null is null, hence the coalesce).
    pub(super) const RECORD_LAST_USED: &str =
        "update client set last_used_at = max(coalesce(last_used_at, $2), $2) where client_id = $1";

    /// Skips a client that no longer exists; keeps the later time.
    pub(super) const RECORD_SCOPE_USAGE: &str =
        "insert into client_scope_usage (client_id, scope, last_issued_at)
         select $1, $2, $3 where exists (select 1 from client where client_id = $1)
         on conflict (client_id, scope) do update
         set last_issued_at = max(client_scope_usage.last_issued_at, excluded.last_issued_at)";

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

client_store!(SqliteStore, Sqlite);
