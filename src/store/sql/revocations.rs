//! The shared part of revocations. Each backend provides `revoke_sessions_of` (offboarding, which locks differently in each dialect). Uses: model, rows.

pub(crate) const LIST: &str =
    "select revocation_id, kind, value, revoked_at, expires_at, scopes from revocation
     where revocation_id > $1 and expires_at > $2 order by revocation_id limit $3";

/// A jti or session revocation still in force.
pub(crate) const IN_FORCE: &str = "select exists(select 1 from revocation
     where kind = $1 and value = $2 and expires_at > $3)";

/// The user is disabled and a cut-off recorded since it was: nothing new can be revoked.
pub(crate) const USER_CUT_OFF: &str = "select exists(select 1 from user_account u
     join revocation r on r.kind = 'subject' and r.value = $2
     where u.user_id = $1 and u.disabled and r.revoked_at >= u.updated_at and r.expires_at > $3)";

/// The client is disabled and a cut-off recorded since it was.
pub(crate) const CLIENT_CUT_OFF: &str = "select exists(select 1 from client c
     join revocation r on r.kind = 'client' and r.value = c.client_id
     where c.client_id = $1 and c.disabled and r.revoked_at >= c.updated_at and r.expires_at > $2)";

pub(crate) const DISABLE_USER: &str =
    "update user_account set disabled = true, updated_at = $2 where user_id = $1";

pub(crate) const DISABLE_CLIENT: &str =
    "update client set disabled = true, updated_at = $2 where client_id = $1";

macro_rules! revocation_store {
    ($store:ty) => {
        const _: () = {
            use time::OffsetDateTime;
            use $crate::model::{AuditEvent, Revocation, RevocationKind, StatusRef};
            use $crate::store::rows::{DbTime, DbUuid, RevocationRow};
            use $crate::store::sql::revocations as q;
            use $crate::store::{RevocationAdded, RevocationStore, StoreError, topic};

            #[async_trait::async_trait]
            impl RevocationStore for $store {
                async fn add_revocation(
                    &self,
                    kind: RevocationKind,
                    value: &str,
                    now: OffsetDateTime,
                    expires_at: OffsetDateTime,
                    audit: &AuditEvent,
                    status: Option<StatusRef>,
                ) -> Result<RevocationAdded, StoreError> {
                    let single = matches!(kind, RevocationKind::Jti | RevocationKind::Session);
                    // Revoking what is already revoked writes nothing: checked first without
                    // the revocation lock (the common repeat costs one indexed read), and again
                    // under it, so two concurrent revocations of one jti record it once.
                    let in_force = || {
                        sqlx::query_scalar::<_, bool>(q::IN_FORCE)
                            .bind(kind.as_str())
                            .bind(value)
                            .bind(DbTime(now))
                    };
                    if single && in_force().fetch_one(&self.pool).await? {
                        return Ok(RevocationAdded::AlreadyRevoked);
                    }
                    let mut tx = self.begin_write().await?;
                    Self::lock_revocations(&mut tx).await?;
                    if single && in_force().fetch_one(&mut *tx).await? {
                        return Ok(RevocationAdded::AlreadyRevoked);
                    }
                    let actor = audit.actor.as_deref();
                    Self::insert_revocation(&mut tx, kind, value, now, expires_at, actor).await?;
                    if let Some(status) = status {
                        sqlx::query($crate::store::sql::status_lists::MARK)
                            .bind(status.list_id)
                            .bind(status.idx)
                            .bind(DbTime(now))
                            .execute(&mut *tx)
                            .await?;
                    }
                    Self::announce(&mut tx, topic::REVOCATIONS, now).await?;
                    Self::insert_audit(&mut tx, audit).await?;
                    tx.commit().await?;
                    Ok(RevocationAdded::Added)
                }

                async fn list_revocations(
                    &self,
                    after: i64,
                    now: OffsetDateTime,
                    limit: u32,
                ) -> Result<Vec<Revocation>, StoreError> {
                    sqlx::query_as::<_, RevocationRow>(q::LIST)
                        .bind(after)
                        .bind(DbTime(now))
                        .bind(i64::from(limit))
                        .fetch_all(&self.pool)
                        .await?
                        .into_iter()
                        .map(Revocation::try_from)
                        .collect()
                }

                async fn revoke_principal(
                    &self,
                    kind: RevocationKind,
                    value: &str,
                    disable: bool,
                    now: OffsetDateTime,
                    cutoff_expires_at: OffsetDateTime,
                    audit: &AuditEvent,
                ) -> Result<u64, StoreError> {
                    let mut tx = self.begin_write().await?;
                    let user_id = uuid::Uuid::parse_str(value).ok().map(DbUuid);
                    if disable && kind == RevocationKind::Client {
                        // The enabled admin rows are locked first, in id order, as every path
                        // that disables a client takes them: two admins disabling each other
                        // queue instead of deadlocking on each other's row.
                        Self::keep_an_admin(&mut tx, value).await?;
                    }
                    let sessions = Self::revoke_sessions_of(&mut tx, kind, value, now).await?;
                    if kind == RevocationKind::Subject {
                        // Signed-in browsers too: none may start a new login afterwards. (Were
                        // nothing new revoked below, the user is disabled already, and a
                        // disabled user's browser sessions are dead anyway.)
                        sqlx::query($crate::store::sql::authorization::END_USER_BROWSERS)
                            .bind(user_id)
                            .bind(DbTime(now))
                            .execute(&mut *tx)
                            .await?;
                    }
                    if sessions.is_empty() {
                        let cut_off: bool = match kind {
                            RevocationKind::Subject => sqlx::query_scalar(q::USER_CUT_OFF)
                                .bind(user_id)
                                .bind(value)
                                .bind(DbTime(now)),
                            _ => sqlx::query_scalar(q::CLIENT_CUT_OFF)
                                .bind(value)
                                .bind(DbTime(now)),
                        }
                        .fetch_one(&mut *tx)
                        .await?;
                        // Nothing new to revoke: the rollback leaves no trace.
                        if cut_off {
                            return Ok(0);
                        }
                    }
                    let actor = audit.actor.as_deref();
                    Self::insert_revocation(&mut tx, kind, value, now, cutoff_expires_at, actor)
                        .await?;
                    // A refresh that committed just before the sessions were locked mints its
                    // access token after the cut-off; the session entry catches it by `sid`.
                    for session in &sessions {
                        let session_kind = RevocationKind::Session;
                        Self::insert_revocation(
                            &mut tx,
                            session_kind,
                            session,
                            now,
                            cutoff_expires_at,
                            actor,
                        )
                        .await?;
                    }
                    if disable {
                        match kind {
                            RevocationKind::Subject => {
                                sqlx::query(q::DISABLE_USER)
                                    .bind(user_id)
                                    .bind(DbTime(now))
                                    .execute(&mut *tx)
                                    .await?;
                            }
                            _ => {
                                sqlx::query(q::DISABLE_CLIENT)
                                    .bind(value)
                                    .bind(DbTime(now))
                                    .execute(&mut *tx)
                                    .await?;
                                Self::announce(&mut tx, topic::CLIENTS, now).await?;
                            }
                        }
                    }
                    Self::announce(&mut tx, topic::REVOCATIONS, now).await?;
                    Self::insert_audit(&mut tx, audit).await?;
                    tx.commit().await?;
                    Ok(sessions.len() as u64)
                }
            }
        };
    };
}
pub(crate) use revocation_store;
