//! The shared part of the signing keys. Each backend provides `begin_write`, `lock_keys` (wait for the other key writers), `try_lock_keys` (or stand down) and `KEY_STATE_LOCKED`. Uses: model, rows.

pub(crate) const LIST: &str = "select kid, alg, state, public_jwk, private_key_ciphertext,
        created_at, activated_at, retired_at, revoked_at
     from signing_key order by created_at, kid";

pub(crate) const COUNT: &str = "select count(*) from signing_key";

pub(crate) const NEXT_KID: &str = "select kid from signing_key where state = 'next'";

pub(crate) const RETIRE_ACTIVE: &str =
    "update signing_key set state = 'retired', retired_at = $1 where state = 'active'";

pub(crate) const ACTIVATE: &str =
    "update signing_key set state = 'active', activated_at = $2 where kid = $1";

pub(crate) const REVOKE: &str =
    "update signing_key set state = 'revoked', revoked_at = $2 where kid = $1";

/// The next key has been published the longest: it takes over at once.
pub(crate) const PROMOTE_NEXT: &str =
    "update signing_key set state = 'active', activated_at = $1 where state = 'next'";

pub(crate) const REWRAP_KEY: &str = "update signing_key set private_key_ciphertext = $3
     where kid = $1 and private_key_ciphertext = $2";

pub(crate) const REWRAP_CHECK: &str = "update master_key_check set ciphertext = $2
     where master_key_check_id = 1 and ciphertext = $1";

macro_rules! key_store {
    ($store:ty) => {
        const _: () = {
            use time::OffsetDateTime;
            use $crate::model::{AuditEvent, KeyState, NewSigningKey, SigningKey};
            use $crate::store::rows::{DbTime, SigningKeyRow};
            use $crate::store::sql::keys as q;
            use $crate::store::{KeyRotation, KeyStore, KeysAdded, Rewrap, StoreError, topic};

            #[async_trait::async_trait]
            impl KeyStore for $store {
                async fn list_signing_keys(&self) -> Result<Vec<SigningKey>, StoreError> {
                    sqlx::query_as::<_, SigningKeyRow>(q::LIST)
                        .fetch_all(&self.pool)
                        .await?
                        .into_iter()
                        .map(SigningKey::try_from)
                        .collect()
                }

                async fn add_initial_signing_keys(
                    &self,
                    active: &NewSigningKey,
                    next: &NewSigningKey,
                    now: OffsetDateTime,
                ) -> Result<KeysAdded, StoreError> {
                    let mut tx = self.begin_write().await?;
                    Self::lock_keys(&mut tx).await?;
                    let existing: i64 = sqlx::query_scalar(q::COUNT).fetch_one(&mut *tx).await?;
                    if existing > 0 {
                        tx.rollback().await?;
                        return Ok(KeysAdded::AlreadyPresent);
                    }
                    Self::insert_key(&mut tx, active, KeyState::Active, now).await?;
                    Self::insert_key(&mut tx, next, KeyState::Next, now).await?;
                    Self::announce(&mut tx, topic::KEYS, now).await?;
                    tx.commit().await?;
                    Ok(KeysAdded::Added)
                }

                async fn rotate_signing_keys(
                    &self,
                    expected_next: &str,
                    new_next: &NewSigningKey,
                    now: OffsetDateTime,
                ) -> Result<KeyRotation, StoreError> {
                    let mut tx = self.begin_write().await?;
                    // One instance rotates at a time; the others stand down. Early returns roll
                    // back at once: a dropped transaction's rollback, and so the lock's release,
                    // waits for the pooled connection's release task, and a writer on another
                    // connection could meanwhile stand down for nothing.
                    if !Self::try_lock_keys(&mut tx).await? {
                        tx.rollback().await?;
                        return Ok(KeyRotation::Skipped);
                    }
                    let next: Option<String> = sqlx::query_scalar(q::NEXT_KID)
                        .fetch_optional(&mut *tx)
                        .await?;
                    if next.as_deref() != Some(expected_next) {
                        tx.rollback().await?;
                        return Ok(KeyRotation::Skipped);
                    }
                    sqlx::query(q::RETIRE_ACTIVE)
                        .bind(DbTime(now))
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query(q::ACTIVATE)
                        .bind(expected_next)
                        .bind(DbTime(now))
                        .execute(&mut *tx)
                        .await?;
                    Self::insert_key(&mut tx, new_next, KeyState::Next, now).await?;
                    Self::announce(&mut tx, topic::KEYS, now).await?;
                    tx.commit().await?;
                    Ok(KeyRotation::Rotated)
                }

                async fn revoke_signing_key(
                    &self,
                    kid: &str,
                    replacement: &NewSigningKey,
                    now: OffsetDateTime,
                    audit: Option<&AuditEvent>,
                ) -> Result<Option<KeyState>, StoreError> {
                    let mut tx = self.begin_write().await?;
                    Self::lock_keys(&mut tx).await?;
                    let state: Option<String> = sqlx::query_scalar(Self::KEY_STATE_LOCKED)
                        .bind(kid)
                        .fetch_optional(&mut *tx)
                        .await?;
                    let Some(state) = state.as_deref().and_then(KeyState::parse) else {
                        tx.rollback().await?;
                        return Ok(None);
                    };
                    if state == KeyState::Revoked {
                        tx.rollback().await?;
                        return Ok(Some(state));
                    }
                    sqlx::query(q::REVOKE)
                        .bind(kid)
                        .bind(DbTime(now))
                        .execute(&mut *tx)
                        .await?;
                    if state == KeyState::Active {
                        sqlx::query(q::PROMOTE_NEXT)
                            .bind(DbTime(now))
                            .execute(&mut *tx)
                            .await?;
                    }
                    if matches!(state, KeyState::Active | KeyState::Next) {
                        Self::insert_key(&mut tx, replacement, KeyState::Next, now).await?;
                    }
                    Self::announce(&mut tx, topic::KEYS, now).await?;
                    if let Some(event) = audit {
                        Self::insert_audit(&mut tx, event).await?;
                    }
                    tx.commit().await?;
                    Ok(Some(state))
                }

                async fn rewrap_keys(
                    &self,
                    check: &Rewrap,
                    keys: &[Rewrap],
                ) -> Result<bool, StoreError> {
                    // Any early return rolls everything back.
                    let mut tx = self.begin_write().await?;
                    Self::lock_keys(&mut tx).await?;
                    let existing: i64 = sqlx::query_scalar(q::COUNT).fetch_one(&mut *tx).await?;
                    if usize::try_from(existing).ok() != Some(keys.len()) {
                        tx.rollback().await?;
                        return Ok(false);
                    }
                    for key in keys {
                        let done = sqlx::query(q::REWRAP_KEY)
                            .bind(&key.kid)
                            .bind(&key.old)
                            .bind(&key.new)
                            .execute(&mut *tx)
                            .await?;
                        if done.rows_affected() != 1 {
                            tx.rollback().await?;
                            return Ok(false);
                        }
                    }
                    let done = sqlx::query(q::REWRAP_CHECK)
                        .bind(&check.old)
                        .bind(&check.new)
                        .execute(&mut *tx)
                        .await?;
                    if done.rows_affected() != 1 {
                        tx.rollback().await?;
                        return Ok(false);
                    }
                    tx.commit().await?;
                    Ok(true)
                }
            }
        };
    };
}
pub(crate) use key_store;
