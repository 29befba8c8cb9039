//! Roles (named scope sets) and the roles each user holds. A change that takes scopes away records one revocation entry, whatever the number of users it reaches. Uses: model.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreError;
use crate::model::{AuditEvent, HeldRoles, RevocationKind, Role};

/// What writing or deleting a role did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleWrite {
    /// The role did not exist before.
    pub created: bool,
    /// The scopes the role no longer grants, sorted (all of them when it was deleted).
    pub lost: Vec<String>,
    /// Whether any user held the role when it changed: whether the change can have cut off
    /// a token.
    pub held: bool,
}

#[async_trait]
pub trait RoleStore: Send + Sync {
    /// Creates or replaces a role, in one transaction with its audit event (its detail gains
    /// `previous` and `lost`). When scopes are lost, a `Role` revocation entry cut off at `now`,
    /// in force until `cutoff_expires_at`, is recorded and announced with it.
    async fn put_role(
        &self,
        role: &Role,
        now: OffsetDateTime,
        cutoff_expires_at: OffsetDateTime,
        audit: &AuditEvent,
    ) -> Result<RoleWrite, StoreError>;

    /// Deletes a role (its holders lose it), as `put_role` with every scope lost; `None` for
    /// an unknown role, nothing written.
    async fn delete_role(
        &self,
        name: &str,
        now: OffsetDateTime,
        cutoff_expires_at: OffsetDateTime,
        audit: &AuditEvent,
    ) -> Result<Option<RoleWrite>, StoreError>;

    async fn find_role(&self, name: &str) -> Result<Option<Role>, StoreError>;

    /// Every role, by name.
    async fn list_roles(&self) -> Result<Vec<Role>, StoreError>;

    /// The roles a user holds now, with their scopes.
    async fn held_roles(&self, user_id: uuid::Uuid) -> Result<HeldRoles, StoreError>;

    /// Replaces the roles of a user, in one transaction with its audit event (its detail gains
    /// `lost`). When the user loses scopes, a `SubjectScope` revocation entry cut off at `now`
    /// is recorded and announced with it. Returns the scopes lost, `None` for an unknown user;
    /// [`StoreError::UnknownRole`] names a role that does not exist, nothing written.
    async fn set_user_roles(
        &self,
        user_id: uuid::Uuid,
        roles: &[String],
        now: OffsetDateTime,
        cutoff_expires_at: OffsetDateTime,
        audit: &AuditEvent,
    ) -> Result<Option<Vec<String>>, StoreError>;

    /// Records a `Role` or `SubjectScope` cut-off again, later: the one written with the change
    /// could not cover a token minted from the old scopes while the change was committing.
    async fn renew_scope_cutoff(
        &self,
        kind: RevocationKind,
        value: &str,
        scopes: &[String],
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Result<(), StoreError>;
}
