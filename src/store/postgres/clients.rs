//! Clients on PostgreSQL: disabling locks the enabled admin rows first. Uses: model.

use sqlx::{Postgres, Transaction};

use super::PgStore;
use crate::store::StoreError;
use crate::store::sql::clients::{client_store, keep_an_admin};

/// Locked in id order, whoever disables: of two admins disabling each other at once, the second
/// waits for the first to commit, then sees one enabled admin left.
const LOCK_ENABLED_ADMINS: &str =
    "select client_id from client where is_admin and not disabled order by client_id for update";

impl PgStore {
    /// The later of the stored and the recorded time (greatest() ignores a null).
    pub(super) const RECORD_LAST_USED: &str = "update client set last_used_at = greatest(coalesce(last_used_at, $2), $2) where client_id = $1";

    /// Skips a client that no longer exists; keeps the later time.
    pub(super) const RECORD_SCOPE_USAGE: &str =
        "insert into client_scope_usage (client_id, scope, last_issued_at)
         select $1, $2, $3 where exists (select 1 from client where client_id = $1)
         on conflict (client_id, scope) do update
         set last_issued_at = greatest(client_scope_usage.last_issued_at, excluded.last_issued_at)";

    /// Refuses to disable the last enabled admin, counted and locked in the disabling
    /// transaction.
    pub(super) async fn keep_an_admin(
        tx: &mut Transaction<'_, Postgres>,
        client_id: &str,
    ) -> Result<(), StoreError> {
        let admins: Vec<String> = sqlx::query_scalar(LOCK_ENABLED_ADMINS)
            .fetch_all(&mut **tx)
            .await?;
        keep_an_admin(&admins, client_id)
    }
}

client_store!(PgStore, Postgres);
