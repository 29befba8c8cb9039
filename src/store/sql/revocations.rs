//! The shared part of revocations. Each backend provides `revoke_sessions_of` (offboarding, which locks differently in each dialect). Uses: model, rows.

pub(crate) const LIST: &str =
    "select revocation_id, kind, value, revoked_at, expires_at from revocation
     where revocation_id > $1 and expires_at > $2 order by revocation_id limit $3";

pub(crate) const DISABLE_USER: &str =
    "update user_account set disabled = true, updated_at = $2 where user_id = $1";

pub(crate) const DISABLE_CLIENT: &str =
    "update client set disabled = true, updated_at = $2 where client_id = $1";

macro_rules! revocation_store {
    ($store:ty) => {
        const _: () = {
            use time::OffsetDateTime;
            use $crate::model::{AuditEvent, Revocation, RevocationKind};
            use $crate::store::rows::{DbTime, DbUuid, RevocationRow};
            use $crate::store::sql::revocations as q;
            use $crate::store::{RevocationStore, StoreError, topic};

            #[async_trait::async_trait]
            impl RevocationStore for $store {
                async fn add_revocation(
                    &self,
                    kind: RevocationKind,
                    value: &str,
                    now: OffsetDateTime,
                    expires_at: OffsetDateTime,
                    audit: &AuditEvent,
                ) -> Result<(), StoreError> {
                    let mut tx = self.begin_write().await?;
                    let actor = audit.actor.as_deref();
                    Self::insert_revocation(&mut tx, kind, value, now, expires_at, actor).await?;
                    Self::announce(&mut tx, topic::REVOCATIONS, now).await?;
                    Self::insert_audit(&mut tx, audit).await?;
                    tx.commit().await?;
                    Ok(())
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
                    let revoked = Self::revoke_sessions_of(&mut tx, kind, value, now).await?;
                    let actor = audit.actor.as_deref();
                    Self::insert_revocation(&mut tx, kind, value, now, cutoff_expires_at, actor)
                        .await?;
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
                                Self::keep_an_admin(&mut tx, value).await?;
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
                    Ok(revoked)
                }
            }
        };
    };
}
pub(crate) use revocation_store;
