//! Sessions and refresh tokens on PostgreSQL: a login waits on the user row an offboarding locks, and rotation is one statement that locks the session row. Uses: model.

use time::OffsetDateTime;

use super::PgStore;
use crate::model::{AuditEvent, NewRefreshToken};
use crate::store::rows::{DbTime, DbUuid, JsonText};
use crate::store::sql::sessions::session_store;
use crate::store::{Consumed, StoreError};

/// Consumes the presented token, inserts its successor and records the rotation's audit event,
/// in one statement.
const CONSUME: &str = "with live as (
         select session_id from session
         where session_id = $1 and revoked_at is null
         for update
     ), consumed as (
         update refresh_token
         set consumed_at = $3, successor_digest = $4, successor_ciphertext = $5
         where session_id = (select session_id from live) and token_digest = $2
           and consumed_at is null and revoked_at is null
         returning session_id
     ), spent as (
         update refresh_token set successor_ciphertext = null
         where session_id = (select session_id from consumed) and successor_digest = $2
           and successor_ciphertext is not null
     ), audited as (
         insert into audit_event (created_at, event_type, actor, subject, client_id, session_id, source_addr, detail)
         select $9, $10, $11, $12, $13, session_id, $14, $15 from consumed
     )
     insert into refresh_token (session_id, token_digest, scope, created_at, idle_expires_at,
         access_status_list_id, access_status_idx)
     select session_id, $4, $6, $7, $8, $16, $17 from consumed";

impl PgStore {
    /// Waits for an offboarding of the user or the client in progress (each locks its row
    /// first), then sees its outcome. Always the user row, then the client row.
    pub(super) const USER_ENABLED: &str =
        "select coalesce((select not disabled from user_account where user_id = $1 for share)
            and (select not disabled from client where client_id = $2 for share), false)";

    async fn consume(
        &self,
        digest: &[u8; 32],
        successor: &NewRefreshToken,
        successor_ciphertext: Option<&[u8]>,
        now: OffsetDateTime,
        audit: &AuditEvent,
    ) -> Result<Consumed, StoreError> {
        // One statement, so one round trip and one implicit transaction: lock the session row
        // (concurrent refreshes of one session queue there; an offboarding that revoked it
        // first is seen), consume the presented token only if it is still live, and insert
        // the successor only if that consumption happened. A refresh that queued behind
        // another finds the token consumed when its update re-checks the row, and inserts
        // nothing. The predecessor's sealed successor (the presented token) is erased at once:
        // now that it is used, a retry of the predecessor is reuse and never gets it back. Only
        // this session's rows are touched. The rotation's audit event is written by the same
        // statement, from the consumed row: no extra round trip, and none without a rotation.
        let inserted = sqlx::query(CONSUME)
            .bind(DbUuid(successor.session_id))
            .bind(&digest[..])
            .bind(DbTime(now))
            .bind(&successor.token_digest[..])
            .bind(successor_ciphertext)
            .bind(&successor.scope)
            .bind(DbTime(successor.created_at))
            .bind(DbTime(successor.idle_expires_at))
            .bind(DbTime(audit.created_at))
            .bind(audit.event_type)
            .bind(&audit.actor)
            .bind(&audit.subject)
            .bind(&audit.client_id)
            .bind(&audit.source_addr)
            .bind(JsonText(audit.detail.to_string()))
            .bind(successor.access_status.map(|s| s.list_id))
            .bind(successor.access_status.map(|s| s.idx))
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(if inserted == 1 {
            Consumed::Rotated
        } else {
            Consumed::NotLive
        })
    }
}

session_store!(PgStore);
