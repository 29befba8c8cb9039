//! Revocations (RFC 7009, and the admin selectors for offboarding and compromise), mirrored in memory by every instance. Uses: model.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreError;
use crate::model::{AuditEvent, Revocation, RevocationKind};

#[async_trait]
pub trait RevocationStore: Send + Sync {
    /// Records a revocation and its audit event, and announces it.
    async fn add_revocation(
        &self,
        kind: RevocationKind,
        value: &str,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// Revocations still in force at `now` with an id above `after`, in id order.
    async fn list_revocations(
        &self,
        after: i64,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Revocation>, StoreError>;

    /// Offboarding or a client's compromise, in one transaction: every live session of the
    /// user (`Subject`) or client (`Client`) and its refresh tokens revoked, a cut-off recorded
    /// for its access tokens (in force until `cutoff_expires_at`), the user or client disabled
    /// if asked, the audit event written. Returns the sessions revoked.
    async fn revoke_principal(
        &self,
        kind: RevocationKind,
        value: &str,
        disable: bool,
        now: OffsetDateTime,
        cutoff_expires_at: OffsetDateTime,
        audit: &AuditEvent,
    ) -> Result<u64, StoreError>;
}
