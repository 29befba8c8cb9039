//! Users of the password grant. Uses: model.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreError;
use crate::model::User;

#[async_trait]
pub trait UserStore: Send + Sync {
    /// Registers a user with its roles, in one transaction; [`StoreError::Conflict`] if the
    /// normalised username is taken, [`StoreError::UnknownRole`] naming a role that does not
    /// exist (nothing written either way).
    async fn add_user(&self, user: &User, roles: &[String]) -> Result<(), StoreError>;

    async fn find_user(&self, user_id: uuid::Uuid) -> Result<Option<User>, StoreError>;

    async fn find_user_by_username_key(
        &self,
        username_key: &str,
    ) -> Result<Option<User>, StoreError>;

    /// Changes a user's flag or password; `None` for an unknown user. Disabling with the
    /// revocation of the user's sessions and tokens is
    /// [`RevocationStore::revoke_principal`](super::RevocationStore::revoke_principal).
    async fn update_user(
        &self,
        user_id: uuid::Uuid,
        disabled: Option<bool>,
        password_phc: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Option<User>, StoreError>;
}
