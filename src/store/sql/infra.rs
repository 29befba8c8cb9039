//! The shared upkeep: readiness, the pool and the master-key check. Uses: rows.

pub(crate) const FIND_MASTER_KEY_CHECK: &str =
    "select ciphertext from master_key_check where master_key_check_id = 1";

pub(crate) const ADD_MASTER_KEY_CHECK: &str =
    "insert into master_key_check (master_key_check_id, ciphertext, created_at) values (1, $1, $2)
     on conflict (master_key_check_id) do nothing";

/// Expands `Infra` for a backend's store, which provides `BACKEND`, `run_migrations` and
/// `purge`.
macro_rules! infra {
    ($store:ty) => {
        const _: () = {
            use time::OffsetDateTime;
            use $crate::store::rows::DbTime;
            use $crate::store::sql::infra as q;
            use $crate::store::{Backend, Infra, StoreError};

            #[async_trait::async_trait]
            impl Infra for $store {
                fn backend(&self) -> Backend {
                    Self::BACKEND
                }

                async fn migrate(&self) -> Result<(), StoreError> {
                    self.run_migrations().await
                }

                async fn ping(&self) -> Result<(), StoreError> {
                    sqlx::query("select 1").execute(&self.pool).await?;
                    Ok(())
                }

                async fn close(&self) {
                    self.pool.close().await;
                }

                fn pool_connections(&self) -> (u32, usize) {
                    (self.pool.size(), self.pool.num_idle())
                }

                async fn find_master_key_check(&self) -> Result<Option<Vec<u8>>, StoreError> {
                    Ok(sqlx::query_scalar(q::FIND_MASTER_KEY_CHECK)
                        .fetch_optional(&self.pool)
                        .await?)
                }

                async fn add_master_key_check(
                    &self,
                    ciphertext: &[u8],
                    now: OffsetDateTime,
                ) -> Result<Vec<u8>, StoreError> {
                    sqlx::query(q::ADD_MASTER_KEY_CHECK)
                        .bind(ciphertext)
                        .bind(DbTime(now))
                        .execute(&self.pool)
                        .await?;
                    self.find_master_key_check()
                        .await?
                        .ok_or(StoreError::Other {
                            kind: "row not found",
                        })
                }

                async fn purge_batch(
                    &self,
                    now: OffsetDateTime,
                    erase_before: OffsetDateTime,
                    batch: u32,
                ) -> Result<u64, StoreError> {
                    self.purge(now, erase_before, batch).await
                }
            }
        };
    };
}
pub(crate) use infra;
