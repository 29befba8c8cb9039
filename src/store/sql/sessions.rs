//! The shared part of sessions and refresh tokens. Each backend provides `USER_ENABLED` (how a login waits for an offboarding in progress), `FIND_REFRESH` (see [`find_refresh`]) and `consume` (rotation). Uses: model, rows.

pub(crate) const INSERT: &str =
    "insert into session (session_id, client_id, user_id, scope, created_at, expires_at,
         status_list_id, status_idx)
     values ($1, $2, $3, $4, $5, $6, $7, $8)";

/// A token with its successor's state and scope, its session and the session's user, the
/// successor joined by `$successor` (each backend's own way of making it one primary-key probe;
/// a live token has none), the user's roles one aggregate.
macro_rules! find_refresh {
    ($successor:literal) => {
        concat!(
            "select t.session_id, t.token_digest, t.scope, t.created_at, t.idle_expires_at,
                t.consumed_at, t.revoked_at, t.successor_ciphertext,
                n.token_digest is not null and n.consumed_at is null and n.revoked_at is null
                    as successor_unused,
                n.scope as successor_scope,
                n.access_status_list_id as successor_status_list_id,
                n.access_status_idx as successor_status_idx,
                s.client_id, s.user_id, s.expires_at as session_expires_at,
                s.revoked_at as session_revoked_at, u.disabled as user_disabled,
                (select string_agg(r.name || ' ' || r.scopes, '\"' order by r.name)
                 from user_role ur join role r on r.name = ur.role_name
                 where ur.user_id = s.user_id) as held_roles
             from refresh_token t
             join session s on s.session_id = t.session_id
             join user_account u on u.user_id = s.user_id ",
            $successor,
            " where t.session_id = $1 and t.token_digest = $2"
        )
    };
}
pub(crate) use find_refresh;

pub(crate) const REVOKE_SESSION: &str = "update session set revoked_at = $2, revoked_reason = $3 where session_id = $1 and revoked_at is null";

/// Revokes a session's live tokens and erases every sealed successor in it.
pub(crate) const REVOKE_SESSION_TOKENS: &str =
    "update refresh_token set revoked_at = coalesce(revoked_at, $2), successor_ciphertext = null
     where session_id = $1 and (revoked_at is null or successor_ciphertext is not null)";

macro_rules! session_store {
    ($store:ty) => {
        const _: () = {
            use time::OffsetDateTime;
            use $crate::model::{
                AuditEvent, NewRefreshToken, RefreshTokenRecord, RevocationKind, Session,
            };
            use $crate::store::rows::{DbTime, DbUuid, RefreshRow};
            use $crate::store::sql::sessions as q;
            use $crate::store::{
                Consumed, Rotation, SessionAdded, SessionRevocation, SessionStore, StoreError,
                topic,
            };

            #[async_trait::async_trait]
            impl SessionStore for $store {
                async fn add_session(
                    &self,
                    session: &Session,
                    first: Option<&NewRefreshToken>,
                ) -> Result<SessionAdded, StoreError> {
                    let mut tx = self.begin_write().await?;
                    let added = Self::start_session(&mut tx, session, first).await?;
                    if added == SessionAdded::Added {
                        tx.commit().await?;
                    }
                    Ok(added)
                }

                async fn find_refresh_token(
                    &self,
                    session_id: uuid::Uuid,
                    digest: &[u8; 32],
                ) -> Result<Option<RefreshTokenRecord>, StoreError> {
                    sqlx::query_as::<_, RefreshRow>(Self::FIND_REFRESH)
                        .bind(DbUuid(session_id))
                        .bind(&digest[..])
                        .fetch_optional(&self.pool)
                        .await?
                        .map(RefreshTokenRecord::try_from)
                        .transpose()
                }

                async fn consume_refresh_tokens(
                    &self,
                    rotations: &[Rotation],
                ) -> Result<Vec<Consumed>, StoreError> {
                    if rotations.is_empty() {
                        return Ok(Vec::new());
                    }
                    self.consume(rotations).await
                }

                async fn revoke_session(
                    &self,
                    session_id: uuid::Uuid,
                    reason: &str,
                    now: OffsetDateTime,
                    access_tokens_expire_at: OffsetDateTime,
                    audit: Option<&AuditEvent>,
                ) -> Result<SessionRevocation, StoreError> {
                    let mut tx = self.begin_write().await?;
                    let revoked = sqlx::query(q::REVOKE_SESSION)
                        .bind(DbUuid(session_id))
                        .bind(DbTime(now))
                        .bind(reason)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    // Already revoked (or unknown): nothing written, nothing audited.
                    if revoked == 0 {
                        return Ok(SessionRevocation::NotLive);
                    }
                    sqlx::query(q::REVOKE_SESSION_TOKENS)
                        .bind(DbUuid(session_id))
                        .bind(DbTime(now))
                        .execute(&mut *tx)
                        .await?;
                    Self::insert_revocation(
                        &mut tx,
                        RevocationKind::Session,
                        &session_id.to_string(),
                        now,
                        access_tokens_expire_at,
                        audit.and_then(|a| a.actor.as_deref()),
                    )
                    .await?;
                    Self::announce(&mut tx, topic::REVOCATIONS, now).await?;
                    if let Some(event) = audit {
                        Self::insert_audit(&mut tx, event).await?;
                    }
                    tx.commit().await?;
                    Ok(SessionRevocation::Revoked)
                }
            }
        };
    };
}
pub(crate) use session_store;
