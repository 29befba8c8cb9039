//! The clients, the same in both dialects. Uses: model, rows.

use std::sync::LazyLock;

use crate::store::rows::CLIENT_COLUMNS;

pub(crate) const INSERT: &str = "insert into client (client_id, name, is_public, secret_digest, secret_phc, grant_types, scopes,
                         audiences, is_admin, can_introspect, disabled, created_at, updated_at)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)";

pub(crate) const UPDATE_SECRET: &str =
    "update client set secret_digest = $2, secret_phc = $3, secret_rotated_at = $4, updated_at = $4
     where client_id = $1 and not is_public";

pub(crate) const SET_DISABLED: &str =
    "update client set disabled = $2, updated_at = $3 where client_id = $1";

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
    ($store:ty) => {
        const _: () = {
            use time::OffsetDateTime;
            use $crate::model::{Client, ClientSecretHash};
            use $crate::store::rows::{ClientRow, DbTime, grant_json, list_json, secret_columns};
            use $crate::store::sql::clients as q;
            use $crate::store::{ClientStore, StoreError, Update, topic};

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
                        .execute(&mut *tx)
                        .await?;
                    Self::announce(&mut tx, topic::CLIENTS, client.created_at).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn update_client_secret(
                    &self,
                    client_id: &str,
                    secret: &ClientSecretHash,
                    now: OffsetDateTime,
                ) -> Result<Update, StoreError> {
                    let (digest, phc) = secret_columns(secret);
                    let mut tx = self.begin_write().await?;
                    let updated = sqlx::query(q::UPDATE_SECRET)
                        .bind(client_id)
                        .bind(digest)
                        .bind(phc)
                        .bind(DbTime(now))
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    if updated == 0 {
                        return Ok(Update::NotFound);
                    }
                    Self::announce(&mut tx, topic::CLIENTS, now).await?;
                    tx.commit().await?;
                    Ok(Update::Done)
                }

                async fn set_client_disabled(
                    &self,
                    client_id: &str,
                    disabled: bool,
                    now: OffsetDateTime,
                ) -> Result<Update, StoreError> {
                    let mut tx = self.begin_write().await?;
                    if disabled {
                        Self::keep_an_admin(&mut tx, client_id).await?;
                    }
                    let updated = sqlx::query(q::SET_DISABLED)
                        .bind(client_id)
                        .bind(disabled)
                        .bind(DbTime(now))
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    if updated == 0 {
                        return Ok(Update::NotFound);
                    }
                    Self::announce(&mut tx, topic::CLIENTS, now).await?;
                    tx.commit().await?;
                    Ok(Update::Done)
                }
            }
        };
    };
}
pub(crate) use client_store;
