//! The users, the same in both dialects. Uses: model, rows.

use std::sync::LazyLock;

use crate::store::rows::USER_COLUMNS;

pub(crate) const INSERT: &str = "insert into user_account (user_id, username, username_key, password_phc, disabled, created_at, updated_at)
     values ($1, $2, $3, $4, $5, $6, $6)";

pub(crate) static FIND_BY_ID: LazyLock<String> =
    LazyLock::new(|| format!("select {USER_COLUMNS} from user_account where user_id = $1"));

pub(crate) static FIND_BY_KEY: LazyLock<String> =
    LazyLock::new(|| format!("select {USER_COLUMNS} from user_account where username_key = $1"));

pub(crate) static UPDATE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "update user_account set disabled = coalesce($2, disabled), password_phc = coalesce($3, password_phc),
                                 updated_at = $4
         where user_id = $1 returning {USER_COLUMNS}"
    )
});

macro_rules! user_store {
    ($store:ty) => {
        const _: () = {
            use time::OffsetDateTime;
            use $crate::model::User;
            use $crate::store::rows::{DbTime, DbUuid, UserRow};
            use $crate::store::sql::users as q;
            use $crate::store::{StoreError, UserStore};

            #[async_trait::async_trait]
            impl UserStore for $store {
                async fn add_user(&self, user: &User, roles: &[String]) -> Result<(), StoreError> {
                    let mut tx = self.begin_write().await?;
                    sqlx::query(q::INSERT)
                        .bind(DbUuid(user.user_id))
                        .bind(&user.username)
                        .bind(&user.username_key)
                        .bind(&user.password_phc)
                        .bind(user.disabled)
                        .bind(DbTime(user.created_at))
                        .execute(&mut *tx)
                        .await?;
                    Self::grant_roles(&mut tx, user.user_id, roles).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn find_user(&self, user_id: uuid::Uuid) -> Result<Option<User>, StoreError> {
                    Ok(sqlx::query_as::<_, UserRow>(&q::FIND_BY_ID)
                        .bind(DbUuid(user_id))
                        .fetch_optional(&self.pool)
                        .await?
                        .map(User::from))
                }

                async fn find_user_by_username_key(
                    &self,
                    username_key: &str,
                ) -> Result<Option<User>, StoreError> {
                    Ok(sqlx::query_as::<_, UserRow>(&q::FIND_BY_KEY)
                        .bind(username_key)
                        .fetch_optional(&self.pool)
                        .await?
                        .map(User::from))
                }

                async fn update_user(
                    &self,
                    user_id: uuid::Uuid,
                    disabled: Option<bool>,
                    password_phc: Option<&str>,
                    now: OffsetDateTime,
                ) -> Result<Option<User>, StoreError> {
                    let mut tx = self.begin_write().await?;
                    let user = sqlx::query_as::<_, UserRow>(&q::UPDATE)
                        .bind(DbUuid(user_id))
                        .bind(disabled)
                        .bind(password_phc)
                        .bind(DbTime(now))
                        .fetch_optional(&mut *tx)
                        .await?;
                    let Some(user) = user else { return Ok(None) };
                    tx.commit().await?;
                    Ok(Some(user.into()))
                }
            }
        };
    };
}
pub(crate) use user_store;
