//! Sessions and refresh tokens on SQLite: the IMMEDIATE transaction orders logins, offboardings and rotations, and rotation runs as separate statements inside it. Uses: model.

use sqlx::{Sqlite, Transaction};

use super::SqliteStore;
use crate::store::rows::{DbTime, DbUuid};
use crate::store::sql::sessions::{find_refresh, session_store};
use crate::store::{Consumed, Rotation, StoreError};

const SESSION_LIVE: &str = "select revoked_at is null from session where session_id = $1";

const CONSUME: &str =
    "update refresh_token set consumed_at = $3, successor_digest = $4, successor_ciphertext = $5
     where session_id = $1 and token_digest = $2 and consumed_at is null and revoked_at is null";

/// The predecessor's sealed successor (the presented token) is used now: erase it.
const ERASE_SPENT: &str = "update refresh_token set successor_ciphertext = null
     where session_id = $1 and successor_digest = $2 and successor_ciphertext is not null";

impl SqliteStore {
    /// SQLite probes the successor by the primary key from the join itself.
    pub(super) const FIND_REFRESH: &str = find_refresh!(
        "left join refresh_token n
             on n.session_id = t.session_id and n.token_digest = t.successor_digest"
    );

    /// The write lock orders a login after an offboarding in progress.
    pub(super) const USER_ENABLED: &str =
        "select coalesce((select not disabled from user_account where user_id = $1)
            and (select not disabled from client where client_id = $2), false)";

    /// Every rotation in one IMMEDIATE transaction (the write lock first, so concurrent
    /// rotations queue instead of deadlocking), each checked and carried out in turn.
    async fn consume(&self, rotations: &[Rotation]) -> Result<Vec<Consumed>, StoreError> {
        let mut tx = self.begin_write().await?;
        let mut outcomes = Vec::with_capacity(rotations.len());
        for rotation in rotations {
            outcomes.push(Self::consume_one(&mut tx, rotation).await?);
        }
        tx.commit().await?;
        Ok(outcomes)
    }

    async fn consume_one(
        tx: &mut Transaction<'_, Sqlite>,
        rotation: &Rotation,
    ) -> Result<Consumed, StoreError> {
        let Rotation {
            digest,
            successor,
            successor_ciphertext,
            now,
            audit,
        } = rotation;
        let session_id = DbUuid(successor.session_id);
        let live: Option<bool> = sqlx::query_scalar(SESSION_LIVE)
            .bind(session_id)
            .fetch_optional(&mut **tx)
            .await?;
        if live != Some(true) {
            return Ok(Consumed::NotLive);
        }
        let consumed = sqlx::query(CONSUME)
            .bind(session_id)
            .bind(&digest[..])
            .bind(DbTime(*now))
            .bind(&successor.token_digest[..])
            .bind(successor_ciphertext.as_deref())
            .execute(&mut **tx)
            .await?
            .rows_affected();
        if consumed != 1 {
            return Ok(Consumed::NotLive);
        }
        sqlx::query(ERASE_SPENT)
            .bind(session_id)
            .bind(&digest[..])
            .execute(&mut **tx)
            .await?;
        Self::insert_refresh(tx, successor).await?;
        Self::insert_audit(tx, audit).await?;
        Ok(Consumed::Rotated)
    }
}

session_store!(SqliteStore);
