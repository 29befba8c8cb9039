//! Login throttling, the same in both dialects. Uses: rows.

/// Counts an attempt, restarting the count when the window opened before `$3`.
pub(crate) const COUNT: &str = "insert into login_throttle (throttle_key, failures, window_start) values ($1, 1, $2)
     on conflict (throttle_key) do update set
        failures = case when login_throttle.window_start < $3 then 1 else login_throttle.failures + 1 end,
        window_start = case when login_throttle.window_start < $3 then $2 else login_throttle.window_start end
     returning failures, blocked_until";

pub(crate) const BLOCK: &str =
    "update login_throttle set blocked_until = $2, changed_at = $3 where throttle_key = $1";

/// `$2`: forget the count; `$3`: the block the attempt started, ended at `$4`.
pub(crate) const REFUND: &str = "update login_throttle set
        failures = case when $2 or failures < 1 then 0 else failures - 1 end,
        changed_at = case when blocked_until = $3 then $4 else changed_at end,
        blocked_until = case when blocked_until = $3 then $4 else blocked_until end
     where throttle_key = $1";

pub(crate) const CHANGES: &str =
    "select throttle_key, blocked_until from login_throttle where changed_at >= $1";

macro_rules! throttle_store {
    ($store:ty) => {
        const _: () = {
            use time::OffsetDateTime;
            use $crate::store::rows::DbTime;
            use $crate::store::sql::throttle as q;
            use $crate::store::{Reservation, StoreError, ThrottleRule, ThrottleStore};

            #[async_trait::async_trait]
            impl ThrottleStore for $store {
                async fn reserve_attempt(
                    &self,
                    rules: &[ThrottleRule],
                    now: OffsetDateTime,
                ) -> Result<Reservation, StoreError> {
                    // One order for every transaction, so two attempts never wait on each other
                    // in a cycle.
                    let mut rules = rules.to_vec();
                    rules.sort_by(|a, b| a.key.cmp(&b.key));
                    let mut tx = self.begin_write().await?;
                    let mut blocks = Vec::new();
                    for rule in &rules {
                        let (attempts, blocked): (i32, Option<DbTime>) = sqlx::query_as(q::COUNT)
                            .bind(&rule.key[..])
                            .bind(DbTime(now))
                            .bind(DbTime(now - rule.window))
                            .fetch_one(&mut *tx)
                            .await?;
                        if let Some(until) = blocked.map(|t| t.0).filter(|until| *until > now) {
                            // Dropping the transaction takes back what it counted.
                            tx.rollback().await?;
                            return Ok(Reservation::Refused {
                                key: rule.key,
                                until,
                            });
                        }
                        if let Some(block) = rule.block_after(attempts.max(0) as u32) {
                            let until = now + block;
                            sqlx::query(q::BLOCK)
                                .bind(&rule.key[..])
                                .bind(DbTime(until))
                                .bind(DbTime(now))
                                .execute(&mut *tx)
                                .await?;
                            blocks.push((rule.key, until));
                        }
                    }
                    tx.commit().await?;
                    Ok(Reservation::Admitted { blocks })
                }

                async fn refund_attempt(
                    &self,
                    key: &[u8; 32],
                    forget: bool,
                    own_block: Option<OffsetDateTime>,
                    now: OffsetDateTime,
                ) -> Result<(), StoreError> {
                    sqlx::query(q::REFUND)
                        .bind(&key[..])
                        .bind(forget)
                        .bind(own_block.map(DbTime))
                        .bind(DbTime(now))
                        .execute(&self.pool)
                        .await?;
                    Ok(())
                }

                async fn list_throttle_changes(
                    &self,
                    since: OffsetDateTime,
                ) -> Result<Vec<(Vec<u8>, Option<OffsetDateTime>)>, StoreError> {
                    let rows: Vec<(Vec<u8>, Option<DbTime>)> = sqlx::query_as(q::CHANGES)
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
