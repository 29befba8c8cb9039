//! Revocations on SQLite: the IMMEDIATE transaction already excludes every other writer, so offboarding takes no row locks. Uses: model.

use sqlx::{Sqlite, Transaction};
use time::OffsetDateTime;

use super::SqliteStore;
use crate::model::RevocationKind;
use crate::store::StoreError;
use crate::store::rows::DbTime;
use crate::store::sql::revocations::revocation_store;

const REVOKE_USER_SESSIONS: &str =
    "update session set revoked_at = $2, revoked_reason = 'subject_revoked'
     where user_id = $1 and revoked_at is null
     returning session_id";

const REVOKE_CLIENT_SESSIONS: &str =
    "update session set revoked_at = $2, revoked_reason = 'client_revoked'
     where client_id = $1 and revoked_at is null
     returning session_id";

/// The tokens of the sessions the statement above revoked (at `$2`, just now).
const REVOKE_USER_TOKENS: &str =
    "update refresh_token set revoked_at = coalesce(revoked_at, $2), successor_ciphertext = null
     where session_id in (select session_id from session where user_id = $1 and revoked_at = $2)
       and (revoked_at is null or successor_ciphertext is not null)";

const REVOKE_CLIENT_TOKENS: &str =
    "update refresh_token set revoked_at = coalesce(revoked_at, $2), successor_ciphertext = null
     where session_id in (select session_id from session where client_id = $1 and revoked_at = $2)
       and (revoked_at is null or successor_ciphertext is not null)";

impl SqliteStore {
    /// Revokes every live session of the user (`Subject`) or client and the refresh tokens in
    /// them; returns their ids.
    async fn revoke_sessions_of(
        tx: &mut Transaction<'_, Sqlite>,
        kind: RevocationKind,
        value: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<String>, StoreError> {
        let (sessions, tokens) = match kind {
            RevocationKind::Subject => (REVOKE_USER_SESSIONS, REVOKE_USER_TOKENS),
            _ => (REVOKE_CLIENT_SESSIONS, REVOKE_CLIENT_TOKENS),
        };
        let revoked: Vec<String> = sqlx::query_scalar(sessions)
            .bind(value)
            .bind(DbTime(now))
            .fetch_all(&mut **tx)
            .await?;
        sqlx::query(tokens)
            .bind(value)
            .bind(DbTime(now))
            .execute(&mut **tx)
            .await?;
        Ok(revoked)
    }
}

revocation_store!(SqliteStore);
