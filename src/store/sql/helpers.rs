//! The writes several aggregates share (a refresh token, a revocation, an audit event, a signing key, a change announcement), each run inside the caller's transaction. Uses: model, rows.

pub(crate) const INSERT_REFRESH: &str =
    "insert into refresh_token (session_id, token_digest, scope, created_at, idle_expires_at,
         access_status_list_id, access_status_idx)
     values ($1, $2, $3, $4, $5, $6, $7)";

/// `scopes` (`$6`): the scopes lost, for `role` and `subject_scope` entries; null otherwise.
pub(crate) const INSERT_REVOCATION: &str =
    "insert into revocation (kind, value, revoked_at, expires_at, actor, created_at, scopes)
     values ($1, $2, $3, $4, $5, $3, $6)";

pub(crate) const INSERT_AUDIT: &str = "insert into audit_event (created_at, event_type, actor, subject, client_id, session_id, source_addr, detail)
     values ($1, $2, $3, $4, $5, $6, $7, $8)";

pub(crate) const INSERT_KEY: &str = "insert into signing_key (kid, alg, state, public_jwk, private_key_ciphertext, created_at, activated_at)
     values ($1, $2, $3, $4, $5, $6, case when $3 = 'active' then $6 end)";

pub(crate) const BUMP_TOPIC: &str =
    "update change_feed set version = version + 1, changed_at = $2 where topic = $1";

/// Expands the shared writes as associated functions of a backend's store. The backend
/// provides `lock_revocations` and `notify`.
macro_rules! shared_helpers {
    ($store:ty, $db:ty) => {
        impl $store {
            async fn insert_refresh(
                tx: &mut sqlx::Transaction<'_, $db>,
                token: &$crate::model::NewRefreshToken,
            ) -> Result<(), $crate::store::StoreError> {
                use $crate::store::rows::{DbTime, DbUuid};
                sqlx::query($crate::store::sql::helpers::INSERT_REFRESH)
                    .bind(DbUuid(token.session_id))
                    .bind(&token.token_digest[..])
                    .bind(&token.scope)
                    .bind(DbTime(token.created_at))
                    .bind(DbTime(token.idle_expires_at))
                    .bind(token.access_status.map(|s| s.list_id))
                    .bind(token.access_status.map(|s| s.idx))
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }

            /// A login session (a password login, or a code's exchange) and, if given, its first
            /// refresh token, unless the user or the client has been disabled (or removed)
            /// meanwhile: then nothing is written. `USER_ENABLED` takes the user row, then the
            /// client row, as an offboarding does, so a login racing one waits for it and never
            /// outlives it.
            async fn start_session(
                tx: &mut sqlx::Transaction<'_, $db>,
                session: &$crate::model::Session,
                first: Option<&$crate::model::NewRefreshToken>,
            ) -> Result<$crate::store::SessionAdded, $crate::store::StoreError> {
                use $crate::store::rows::{DbTime, DbUuid};
                let enabled: Option<bool> = sqlx::query_scalar(Self::USER_ENABLED)
                    .bind(DbUuid(session.user_id))
                    .bind(&session.client_id)
                    .fetch_optional(&mut **tx)
                    .await?;
                if enabled != Some(true) {
                    return Ok($crate::store::SessionAdded::UserDisabled);
                }
                sqlx::query($crate::store::sql::sessions::INSERT)
                    .bind(DbUuid(session.session_id))
                    .bind(&session.client_id)
                    .bind(DbUuid(session.user_id))
                    .bind(&session.scope)
                    .bind(DbTime(session.created_at))
                    .bind(DbTime(session.expires_at))
                    .bind(session.status.map(|s| s.list_id))
                    .bind(session.status.map(|s| s.idx))
                    .execute(&mut **tx)
                    .await?;
                if let Some(first) = first {
                    Self::insert_refresh(tx, first).await?;
                }
                Ok($crate::store::SessionAdded::Added)
            }

            async fn insert_revocation(
                tx: &mut sqlx::Transaction<'_, $db>,
                kind: $crate::model::RevocationKind,
                value: &str,
                now: time::OffsetDateTime,
                expires_at: time::OffsetDateTime,
                actor: Option<&str>,
            ) -> Result<(), $crate::store::StoreError> {
                Self::insert_scoped_revocation(tx, kind, value, None, now, expires_at, actor).await
            }

            /// A revocation entry with the scopes it cuts off (`role`, `subject_scope`).
            async fn insert_scoped_revocation(
                tx: &mut sqlx::Transaction<'_, $db>,
                kind: $crate::model::RevocationKind,
                value: &str,
                scopes: Option<&str>,
                now: time::OffsetDateTime,
                expires_at: time::OffsetDateTime,
                actor: Option<&str>,
            ) -> Result<(), $crate::store::StoreError> {
                use $crate::store::rows::DbTime;
                Self::lock_revocations(tx).await?;
                sqlx::query($crate::store::sql::helpers::INSERT_REVOCATION)
                    .bind(kind.as_str())
                    .bind(value)
                    .bind(DbTime(now))
                    .bind(DbTime(expires_at))
                    .bind(actor)
                    .bind(scopes)
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }

            async fn insert_audit(
                tx: &mut sqlx::Transaction<'_, $db>,
                event: &$crate::model::AuditEvent,
            ) -> Result<(), $crate::store::StoreError> {
                use $crate::store::rows::{DbTime, DbUuid, JsonText};
                sqlx::query($crate::store::sql::helpers::INSERT_AUDIT)
                    .bind(DbTime(event.created_at))
                    .bind(event.event_type)
                    .bind(&event.actor)
                    .bind(&event.subject)
                    .bind(&event.client_id)
                    .bind(event.session_id.map(DbUuid))
                    .bind(&event.source_addr)
                    .bind(JsonText(event.detail.to_string()))
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }

            async fn insert_key(
                tx: &mut sqlx::Transaction<'_, $db>,
                key: &$crate::model::NewSigningKey,
                state: $crate::model::KeyState,
                now: time::OffsetDateTime,
            ) -> Result<(), $crate::store::StoreError> {
                use $crate::store::rows::{DbTime, JsonText};
                sqlx::query($crate::store::sql::helpers::INSERT_KEY)
                    .bind(&key.kid)
                    .bind(key.alg.as_str())
                    .bind(state.as_str())
                    .bind(JsonText(key.public_jwk.clone()))
                    .bind(&key.private_key_ciphertext)
                    .bind(DbTime(now))
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }

            /// Bumps a topic's version and announces it; both take effect at commit.
            async fn announce(
                tx: &mut sqlx::Transaction<'_, $db>,
                topic: &str,
                now: time::OffsetDateTime,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query($crate::store::sql::helpers::BUMP_TOPIC)
                    .bind(topic)
                    .bind($crate::store::rows::DbTime(now))
                    .execute(&mut **tx)
                    .await?;
                Self::notify(tx, topic).await
            }
        }
    };
}
pub(crate) use shared_helpers;
