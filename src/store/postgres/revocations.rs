//! Revocations on PostgreSQL: offboarding locks the user row, then the sessions in id order. Uses: model.

use sqlx::{Postgres, Transaction};
use time::OffsetDateTime;

use super::PgStore;
use crate::model::RevocationKind;
use crate::store::StoreError;
use crate::store::rows::DbTime;
use crate::store::sql::revocations::revocation_store;

const LOCK_USER: &str = "select 1 from user_account where user_id = $1 for update";

const LOCK_CLIENT: &str = "select 1 from client where client_id = $1 for update";

// Session rows are locked in session_id order, whatever selects them: two offboardings over
// the same sessions (a user and their client) queue instead of deadlocking.
const REVOKE_USER_SESSIONS: &str =
    "update session set revoked_at = $2, revoked_reason = 'subject_revoked'
     where session_id in (
         select session_id from session where user_id = $1 and revoked_at is null
         order by session_id for update)
     returning session_id";

const REVOKE_CLIENT_SESSIONS: &str =
    "update session set revoked_at = $2, revoked_reason = 'client_revoked'
     where session_id in (
         select session_id from session where client_id = $1 and revoked_at is null
         order by session_id for update)
     returning session_id";

const REVOKE_TOKENS: &str =
    "update refresh_token set revoked_at = coalesce(revoked_at, $2), successor_ciphertext = null
     where session_id = any($1) and (revoked_at is null or successor_ciphertext is not null)";

impl PgStore {
    /// Revokes every live session of the user (`Subject`) or client and the refresh tokens in
    /// them; returns their ids.
    async fn revoke_sessions_of(
        tx: &mut Transaction<'_, Postgres>,
        kind: RevocationKind,
        value: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<String>, StoreError> {
        let user_id = uuid::Uuid::parse_str(value).ok();
        let sessions: Vec<uuid::Uuid> = if kind == RevocationKind::Subject {
            // The user row first, as update_user and add_session take it: no deadlock, and a
            // login in flight waits, then sees the user disabled.
            sqlx::query(LOCK_USER)
                .bind(user_id)
                .execute(&mut **tx)
                .await?;
            sqlx::query_scalar(REVOKE_USER_SESSIONS)
                .bind(user_id)
                .bind(DbTime(now))
                .fetch_all(&mut **tx)
                .await?
        } else {
            // The client row first, as add_session takes it (after the user row): a login in
            // flight either committed its session before (revoked here) or waits, then sees
            // the client disabled.
            sqlx::query(LOCK_CLIENT)
                .bind(value)
                .execute(&mut **tx)
                .await?;
            sqlx::query_scalar(REVOKE_CLIENT_SESSIONS)
                .bind(value)
                .bind(DbTime(now))
                .fetch_all(&mut **tx)
                .await?
        };
        sqlx::query(REVOKE_TOKENS)
            .bind(&sessions)
            .bind(DbTime(now))
            .execute(&mut **tx)
            .await?;
        Ok(sessions.iter().map(uuid::Uuid::to_string).collect())
    }
}

revocation_store!(PgStore);
