//! The Token Status List statements: the same in both dialects, expanded once per backend. Uses: rows.

/// The newest announced list of the key, if it has room (the re-checked condition makes two
/// concurrent leases take distinct runs).
pub(crate) const LEASE: &str = "update status_list set next_idx = next_idx + $2, leased_at = $3
     where status_list_id = (select max(status_list_id) from status_list
                             where kid = $1 and token is not null)
       and next_idx + $2 <= size
     returning status_list_id, next_idx - $2";

pub(crate) const CREATE_LIST: &str =
    "insert into status_list (kid, size, next_idx, created_at, leased_at) values ($1, $2, $3, $4, $4)
     returning status_list_id";

pub(crate) const ADD_BLOCK: &str = "insert into status_block
     (status_list_id, client_id, period_start, base_idx, created_at) values ($1, $2, $3, $4, $5)
     on conflict do nothing";

pub(crate) const FIND_BLOCK: &str = "select base_idx from status_block
     where status_list_id = $1 and client_id = $2 and period_start = $3";

pub(crate) const LISTS: &str =
    "select l.status_list_id, l.kid, l.size, l.built_version, l.built_at,
        k.state, coalesce(k.revoked_at, k.retired_at) as ended_at
     from status_list l left join signing_key k on k.kid = l.kid
     where l.token is not null order by l.status_list_id";

/// The tokens of sessions (a login's) and of rotations minted since `$2`.
pub(crate) const SESSION_INDICES: &str =
    "select status_idx, user_id, client_id, created_at, revoked_at from session
     where status_list_id = $1 and created_at >= $2
     union all
     select r.access_status_idx, s.user_id, s.client_id, r.created_at, s.revoked_at
     from refresh_token r join session s on s.session_id = r.session_id
     where r.access_status_list_id = $1 and r.created_at >= $2";

pub(crate) const BLOCKS: &str =
    "select base_idx, client_id, period_start from status_block where status_list_id = $1";

pub(crate) const MARKS: &str = "select status_idx from status_mark where status_list_id = $1";

pub(crate) const CUTOFFS: &str = "select kind, value, revoked_at from revocation
     where kind in ('subject', 'client') and expires_at > $1";

pub(crate) const ENABLED_CLIENTS: &str = "select client_id from client where not disabled";

pub(crate) const STORE: &str = "update status_list
     set token = $2, etag = $3, built_version = $4, built_at = $5 where status_list_id = $1";

pub(crate) const FIND: &str =
    "select token, etag from status_list where status_list_id = $1 and token is not null";

pub(crate) const BUILDER: &str = "update status_builder set holder = $1, lease_until = $3
     where status_builder_id = 1 and (holder = $1 or lease_until <= $2)";

pub(crate) const MARK: &str = "insert into status_mark (status_list_id, status_idx, created_at)
     values ($1, $2, $3) on conflict do nothing";

/// Housekeeping, a batch per statement (row values: the same text on both backends). Blocks
/// whose period began before `$1` (unix seconds).
pub(crate) const PURGE_BLOCKS: &str = "delete from status_block
     where (status_list_id, client_id, period_start) in (
         select status_list_id, client_id, period_start from status_block
         where period_start < $1 limit $2)";

/// Marks made before `$1`.
pub(crate) const PURGE_MARKS: &str = "delete from status_mark
     where (status_list_id, status_idx) in (
         select status_list_id, status_idx from status_mark where created_at < $1 limit $2)";

/// Lists last leased before `$1`, with whatever blocks and marks they still have (cascade).
pub(crate) const PURGE_LISTS: &str = "delete from status_list where status_list_id in (
     select status_list_id from status_list where leased_at < $1 limit $2)";

macro_rules! status_list_store {
    ($store:ty) => {
        const _: () = {
            use time::OffsetDateTime;
            use $crate::store::StoreError;
            use $crate::store::rows::{DbTime, DbUuid};
            use $crate::store::sql::status_lists as q;
            use $crate::store::status_lists::{
                BuilderLease, SessionIndex, StatusBlock, StatusInputs, StatusLease, StatusListInfo,
                StatusListStore, StatusPurge,
            };

            #[async_trait::async_trait]
            impl StatusListStore for $store {
                async fn lease_status_indices(
                    &self,
                    kid: &str,
                    count: i64,
                    size: i64,
                    now: OffsetDateTime,
                ) -> Result<StatusLease, StoreError> {
                    let leased: Option<(i64, i64)> = sqlx::query_as(q::LEASE)
                        .bind(kid)
                        .bind(count)
                        .bind(DbTime(now))
                        .fetch_optional(&self.pool)
                        .await?;
                    if let Some((list_id, start)) = leased {
                        return Ok(StatusLease {
                            list_id,
                            start,
                            created: false,
                        });
                    }
                    let list_id: i64 = sqlx::query_scalar(q::CREATE_LIST)
                        .bind(kid)
                        .bind(size)
                        .bind(count)
                        .bind(DbTime(now))
                        .fetch_one(&self.pool)
                        .await?;
                    Ok(StatusLease {
                        list_id,
                        start: 0,
                        created: true,
                    })
                }

                async fn add_status_block(
                    &self,
                    list_id: i64,
                    client_id: &str,
                    period_start: i64,
                    base: i64,
                    now: OffsetDateTime,
                ) -> Result<i64, StoreError> {
                    sqlx::query(q::ADD_BLOCK)
                        .bind(list_id)
                        .bind(client_id)
                        .bind(period_start)
                        .bind(base)
                        .bind(DbTime(now))
                        .execute(&self.pool)
                        .await?;
                    Ok(sqlx::query_scalar(q::FIND_BLOCK)
                        .bind(list_id)
                        .bind(client_id)
                        .bind(period_start)
                        .fetch_one(&self.pool)
                        .await?)
                }

                async fn list_status_lists(&self) -> Result<Vec<StatusListInfo>, StoreError> {
                    type Row = (
                        i64,
                        String,
                        i64,
                        i64,
                        Option<DbTime>,
                        Option<String>,
                        Option<DbTime>,
                    );
                    let rows: Vec<Row> = sqlx::query_as(q::LISTS).fetch_all(&self.pool).await?;
                    Ok(rows
                        .into_iter()
                        .map(
                            |(list_id, kid, size, built_version, built_at, state, ended)| {
                                StatusListInfo {
                                    list_id,
                                    kid,
                                    size,
                                    built_version,
                                    built_at: built_at.map(|t| t.0),
                                    key_state: state,
                                    key_ended_at: ended.map(|t| t.0),
                                }
                            },
                        )
                        .collect())
                }

                async fn status_inputs(
                    &self,
                    list_id: i64,
                    now: OffsetDateTime,
                    issued_since: OffsetDateTime,
                ) -> Result<StatusInputs, StoreError> {
                    type SessionRow = (i64, DbUuid, String, DbTime, Option<DbTime>);
                    let sessions: Vec<SessionRow> = sqlx::query_as(q::SESSION_INDICES)
                        .bind(list_id)
                        .bind(DbTime(issued_since))
                        .fetch_all(&self.pool)
                        .await?;
                    let blocks: Vec<(i64, String, i64)> = sqlx::query_as(q::BLOCKS)
                        .bind(list_id)
                        .fetch_all(&self.pool)
                        .await?;
                    let marks: Vec<i64> = sqlx::query_scalar(q::MARKS)
                        .bind(list_id)
                        .fetch_all(&self.pool)
                        .await?;
                    let cutoffs: Vec<(String, String, DbTime)> = sqlx::query_as(q::CUTOFFS)
                        .bind(DbTime(now))
                        .fetch_all(&self.pool)
                        .await?;
                    let enabled_clients: Vec<String> = sqlx::query_scalar(q::ENABLED_CLIENTS)
                        .fetch_all(&self.pool)
                        .await?;
                    Ok(StatusInputs {
                        enabled_clients,
                        sessions: sessions
                            .into_iter()
                            .map(|(idx, user, client_id, issued, revoked)| SessionIndex {
                                idx,
                                user_id: user.0,
                                client_id,
                                issued_at: issued.0,
                                session_revoked: revoked.is_some(),
                            })
                            .collect(),
                        blocks: blocks
                            .into_iter()
                            .map(|(base, client_id, period_start)| StatusBlock {
                                base,
                                client_id,
                                period_start,
                            })
                            .collect(),
                        marks,
                        cutoffs: cutoffs
                            .into_iter()
                            .map(|(kind, value, at)| (kind, value, at.0))
                            .collect(),
                    })
                }

                async fn store_status_list(
                    &self,
                    list_id: i64,
                    token: &str,
                    etag: &str,
                    version: i64,
                    now: OffsetDateTime,
                ) -> Result<(), StoreError> {
                    sqlx::query(q::STORE)
                        .bind(list_id)
                        .bind(token)
                        .bind(etag)
                        .bind(version)
                        .bind(DbTime(now))
                        .execute(&self.pool)
                        .await?;
                    Ok(())
                }

                async fn find_status_list(
                    &self,
                    list_id: i64,
                ) -> Result<Option<(String, String)>, StoreError> {
                    Ok(sqlx::query_as(q::FIND)
                        .bind(list_id)
                        .fetch_optional(&self.pool)
                        .await?)
                }

                async fn purge_status_lists(
                    &self,
                    horizon: &StatusPurge,
                    batch: u32,
                ) -> Result<u64, StoreError> {
                    let limit = i64::from(batch);
                    let blocks = sqlx::query(q::PURGE_BLOCKS)
                        .bind(horizon.blocks_started_before)
                        .bind(limit)
                        .execute(&self.pool)
                        .await?
                        .rows_affected();
                    let marks = sqlx::query(q::PURGE_MARKS)
                        .bind(DbTime(horizon.marks_before))
                        .bind(limit)
                        .execute(&self.pool)
                        .await?
                        .rows_affected();
                    let lists = sqlx::query(q::PURGE_LISTS)
                        .bind(DbTime(horizon.lists_leased_before))
                        .bind(limit)
                        .execute(&self.pool)
                        .await?
                        .rows_affected();
                    Ok(blocks + marks + lists)
                }

                async fn acquire_status_builder(
                    &self,
                    holder: &str,
                    now: OffsetDateTime,
                    until: OffsetDateTime,
                ) -> Result<BuilderLease, StoreError> {
                    let taken = sqlx::query(q::BUILDER)
                        .bind(holder)
                        .bind(DbTime(now))
                        .bind(DbTime(until))
                        .execute(&self.pool)
                        .await?
                        .rows_affected();
                    Ok(if taken == 1 {
                        BuilderLease::Acquired
                    } else {
                        BuilderLease::HeldElsewhere
                    })
                }
            }
        };
    };
}
pub(crate) use status_list_store;
