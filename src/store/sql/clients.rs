//! The clients, the same in both dialects. Uses: model, rows.

use std::sync::LazyLock;

use crate::store::rows::CLIENT_COLUMNS;

pub(crate) const INSERT: &str = "insert into client (client_id, name, is_public, secret_digest, secret_phc, grant_types, scopes,
                         audiences, is_admin, can_introspect, disabled, created_at, updated_at,
                         secret_created_at, secret_max_age, redirect_uris, first_party)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13, $14, $15, $16)";

/// PATCH /admin/clients/{id}: each of disabled, redirect_uris and first_party when given, in
/// one statement.
pub(crate) const UPDATE: &str = "update client set
         disabled = coalesce($2, disabled), redirect_uris = coalesce($3, redirect_uris),
         first_party = coalesce($4, first_party), updated_at = $5
     where client_id = $1";

/// The right-hand sides read the row as it was: the secret being replaced is copied to the
/// previous columns by the same statement that replaces it.
pub(crate) const UPDATE_SECRET: &str = "update client set
         previous_secret_digest = case when $5 is null then null else secret_digest end,
         previous_secret_phc = case when $5 is null then null else secret_phc end,
         previous_secret_expires_at = $5,
         secret_digest = $2, secret_phc = $3, secret_rotated_at = $4, secret_created_at = $4,
         secret_max_age = coalesce($6, secret_max_age), updated_at = $4
     where client_id = $1 and not is_public";

pub(crate) static FIND_MATCHING: LazyLock<String> = LazyLock::new(|| {
    format!(
        "select {CLIENT_COLUMNS} from client
         where ($1 is null or coalesce(last_used_at, created_at) <= $1)
           and ($2 is null or secret_created_at <= $2)
         order by client_id"
    )
});

pub(crate) const LAST_USED: &str =
    "select client_id, last_used_at from client where $1 is null or client_id = $1";

pub(crate) const SCOPE_USAGE: &str =
    "select client_id, scope, last_issued_at from client_scope_usage
     where $1 is null or client_id = $1";

pub(crate) static LIST: LazyLock<String> =
    LazyLock::new(|| format!("select {CLIENT_COLUMNS} from client"));

pub(crate) static FIND: LazyLock<String> =
    LazyLock::new(|| format!("select {CLIENT_COLUMNS} from client where client_id = $1"));

/// Inside the transaction that disables `client_id`, with the enabled admins read (and, on
/// PostgreSQL, locked) in it: refuses when that client is the only one of them.
pub(crate) fn keep_an_admin(
    enabled_admins: &[String],
    client_id: &str,
) -> Result<(), crate::store::StoreError> {
    if enabled_admins.len() == 1 && enabled_admins[0] == client_id {
        return Err(crate::store::StoreError::LastAdmin);
    }
    Ok(())
}

macro_rules! client_store {
    ($store:ty, $db:ty) => {
        const _: () = {
            use time::OffsetDateTime;
            use $crate::model::{AuditEvent, Client, ClientFilter, ClientUsage};
            use $crate::store::rows::{ClientRow, DbTime, grant_json, list_json, secret_columns};
            use $crate::store::sql::clients as q;
            use $crate::store::{
                ClientChange, ClientStore, SecretRotation, StoreError, Update, topic,
            };

            fn seconds(age: Option<std::time::Duration>) -> Option<i64> {
                age.map(|a| i64::try_from(a.as_secs()).unwrap_or(i64::MAX))
            }

            impl $store {
                /// The end of an update of one client row, in its transaction: `NotFound`
                /// (rolled back) when no row matched; otherwise the audit events recorded and
                /// the change announced, then committed.
                async fn finish_client_update(
                    mut tx: sqlx::Transaction<'static, $db>,
                    updated: u64,
                    audit: &[AuditEvent],
                    now: OffsetDateTime,
                ) -> Result<Update, StoreError> {
                    if updated == 0 {
                        return Ok(Update::NotFound);
                    }
                    for event in audit {
                        Self::insert_audit(&mut tx, event).await?;
                    }
                    Self::announce(&mut tx, topic::CLIENTS, now).await?;
                    tx.commit().await?;
                    Ok(Update::Done)
                }
            }

            #[async_trait::async_trait]
            impl ClientStore for $store {
                async fn list_clients(&self) -> Result<Vec<Client>, StoreError> {
                    sqlx::query_as::<_, ClientRow>(&q::LIST)
                        .fetch_all(&self.pool)
                        .await?
                        .into_iter()
                        .map(Client::try_from)
                        .collect()
                }

                async fn find_client(&self, client_id: &str) -> Result<Option<Client>, StoreError> {
                    sqlx::query_as::<_, ClientRow>(&q::FIND)
                        .bind(client_id)
                        .fetch_optional(&self.pool)
                        .await?
                        .map(Client::try_from)
                        .transpose()
                }

                async fn add_client(&self, client: &Client) -> Result<(), StoreError> {
                    let (digest, phc) = secret_columns(&client.secret);
                    let mut tx = self.begin_write().await?;
                    sqlx::query(q::INSERT)
                        .bind(&client.client_id)
                        .bind(&client.name)
                        .bind(client.is_public())
                        .bind(digest)
                        .bind(phc)
                        .bind(grant_json(&client.grant_types))
                        .bind(list_json(&client.scopes))
                        .bind(list_json(&client.audiences))
                        .bind(client.is_admin)
                        .bind(client.can_introspect)
                        .bind(client.disabled)
                        .bind(DbTime(client.created_at))
                        .bind(client.secret_created_at.map(DbTime))
                        .bind(seconds(client.secret_max_age))
                        .bind(list_json(&client.redirect_uris))
                        .bind(client.first_party)
                        .execute(&mut *tx)
                        .await?;
                    Self::announce(&mut tx, topic::CLIENTS, client.created_at).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn update_client_secret(
                    &self,
                    client_id: &str,
                    rotation: &SecretRotation<'_>,
                    now: OffsetDateTime,
                ) -> Result<Update, StoreError> {
                    let (digest, phc) = secret_columns(rotation.secret);
                    let mut tx = self.begin_write().await?;
                    let updated = sqlx::query(q::UPDATE_SECRET)
                        .bind(client_id)
                        .bind(digest)
                        .bind(phc)
                        .bind(DbTime(now))
                        .bind(rotation.previous_expires_at.map(DbTime))
                        .bind(seconds(rotation.secret_max_age))
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    Self::finish_client_update(tx, updated, &[], now).await
                }

                async fn find_clients(
                    &self,
                    filter: &ClientFilter,
                ) -> Result<Vec<Client>, StoreError> {
                    sqlx::query_as::<_, ClientRow>(&q::FIND_MATCHING)
                        .bind(filter.unused_since.map(DbTime))
                        .bind(filter.secret_created_before.map(DbTime))
                        .fetch_all(&self.pool)
                        .await?
                        .into_iter()
                        .map(Client::try_from)
                        .collect()
                }

                async fn record_client_usage(
                    &self,
                    usage: &[(String, ClientUsage)],
                ) -> Result<(), StoreError> {
                    if usage.is_empty() {
                        return Ok(());
                    }
                    // Rows are written in id order, as every writer of client rows locks them,
                    // so two instances flushing at once cannot deadlock.
                    let mut sorted: Vec<&(String, ClientUsage)> = usage.iter().collect();
                    sorted.sort_by(|a, b| a.0.cmp(&b.0));
                    let mut tx = self.begin_write().await?;
                    for (client_id, used) in sorted {
                        if let Some(at) = used.last_used_at {
                            sqlx::query(Self::RECORD_LAST_USED)
                                .bind(client_id)
                                .bind(DbTime(at))
                                .execute(&mut *tx)
                                .await?;
                        }
                        for (scope, at) in &used.scopes {
                            sqlx::query(Self::RECORD_SCOPE_USAGE)
                                .bind(client_id)
                                .bind(scope)
                                .bind(DbTime(*at))
                                .execute(&mut *tx)
                                .await?;
                        }
                    }
                    tx.commit().await?;
                    Ok(())
                }

                async fn client_usage(
                    &self,
                    client_id: Option<&str>,
                ) -> Result<Vec<(String, ClientUsage)>, StoreError> {
                    let last_used: Vec<(String, Option<DbTime>)> = sqlx::query_as(q::LAST_USED)
                        .bind(client_id)
                        .fetch_all(&self.pool)
                        .await?;
                    let scopes: Vec<(String, String, DbTime)> = sqlx::query_as(q::SCOPE_USAGE)
                        .bind(client_id)
                        .fetch_all(&self.pool)
                        .await?;
                    let mut usage: std::collections::BTreeMap<String, ClientUsage> = last_used
                        .into_iter()
                        .map(|(id, at)| {
                            let used = ClientUsage {
                                last_used_at: at.map(|t| t.0),
                                scopes: Vec::new(),
                            };
                            (id, used)
                        })
                        .collect();
                    for (id, scope, at) in scopes {
                        if let Some(used) = usage.get_mut(&id) {
                            used.issued(&scope, at.0);
                        }
                    }
                    Ok(usage.into_iter().collect())
                }

                async fn update_client(
                    &self,
                    client_id: &str,
                    change: &ClientChange,
                    audit: &[AuditEvent],
                    now: OffsetDateTime,
                ) -> Result<Update, StoreError> {
                    let mut tx = self.begin_write().await?;
                    if change.disabled == Some(true) {
                        Self::keep_an_admin(&mut tx, client_id).await?;
                    }
                    let updated = sqlx::query(q::UPDATE)
                        .bind(client_id)
                        .bind(change.disabled)
                        .bind(change.redirect_uris.as_deref().map(list_json))
                        .bind(change.first_party)
                        .bind(DbTime(now))
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    Self::finish_client_update(tx, updated, audit, now).await
                }
            }
        };
    };
}
pub(crate) use client_store;
