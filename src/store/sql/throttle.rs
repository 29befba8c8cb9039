//! Login throttling, the same in both dialects. Uses: rows.

pub(crate) const FIND: &str = "select blocked_until from login_throttle where throttle_key = $1";

/// Counts a failure, restarting the count when the window opened before `$3`.
pub(crate) const RECORD_FAILURE: &str = "insert into login_throttle (throttle_key, failures, window_start) values ($1, 1, $2)
     on conflict (throttle_key) do update set
        failures = case when login_throttle.window_start < $3 then 1 else login_throttle.failures + 1 end,
        window_start = case when login_throttle.window_start < $3 then $2 else login_throttle.window_start end
     returning failures";

pub(crate) const BLOCK: &str =
    "update login_throttle set blocked_until = $2 where throttle_key = $1";

pub(crate) const CLEAR: &str = "delete from login_throttle where throttle_key = $1";

pub(crate) const LIST: &str = "select throttle_key, blocked_until from login_throttle where window_start >= $1 or blocked_until >= $1";

macro_rules! throttle_store {
    ($store:ty) => {
        const _: () = {
            use time::OffsetDateTime;
            use $crate::store::rows::DbTime;
            use $crate::store::sql::throttle as q;
            use $crate::store::{StoreError, ThrottleStore};

            #[async_trait::async_trait]
            impl ThrottleStore for $store {
                async fn find_throttle(
                    &self,
                    key: &[u8; 32],
                ) -> Result<Option<OffsetDateTime>, StoreError> {
                    let until: Option<Option<DbTime>> = sqlx::query_scalar(q::FIND)
                        .bind(&key[..])
                        .fetch_optional(&self.pool)
                        .await?;
                    Ok(until.flatten().map(|t| t.0))
                }

                async fn record_failure(
                    &self,
                    key: &[u8; 32],
                    now: OffsetDateTime,
                    window: std::time::Duration,
                ) -> Result<u32, StoreError> {
                    let failures: i32 = sqlx::query_scalar(q::RECORD_FAILURE)
                        .bind(&key[..])
                        .bind(DbTime(now))
                        .bind(DbTime(now - window))
                        .fetch_one(&self.pool)
                        .await?;
                    Ok(failures.max(0) as u32)
                }

                async fn block(
                    &self,
                    key: &[u8; 32],
                    until: OffsetDateTime,
                ) -> Result<(), StoreError> {
                    sqlx::query(q::BLOCK)
                        .bind(&key[..])
                        .bind(DbTime(until))
                        .execute(&self.pool)
                        .await?;
                    Ok(())
                }

                async fn clear_failures(&self, key: &[u8; 32]) -> Result<(), StoreError> {
                    sqlx::query(q::CLEAR)
                        .bind(&key[..])
                        .execute(&self.pool)
                        .await?;
                    Ok(())
                }

                async fn list_throttled(
                    &self,
                    since: OffsetDateTime,
                ) -> Result<Vec<(Vec<u8>, Option<OffsetDateTime>)>, StoreError> {
                    let rows: Vec<(Vec<u8>, Option<DbTime>)> = sqlx::query_as(q::LIST)
                        .bind(DbTime(since))
                        .fetch_all(&self.pool)
                        .await?;
                    Ok(rows
                        .into_iter()
                        .map(|(key, until)| (key, until.map(|t| t.0)))
                        .collect())
                }
            }
        };
    };
}
pub(crate) use throttle_store;
