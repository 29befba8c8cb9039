//! Revocations (RFC 7009, and the admin selectors for offboarding and compromise), mirrored in memory by every instance. Uses: model.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreError;
use crate::model::{AuditEvent, Revocation, RevocationKind, StatusRef};

/// What `add_revocation` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevocationAdded {
    Added,
    /// The jti or session was already revoked (and still is): nothing written, nothing
    /// announced, nothing audited.
    AlreadyRevoked,
}

#[async_trait]
pub trait RevocationStore: Send + Sync {
    /// Records a revocation and its audit event, and announces it. A `Jti` or `Session` entry
    /// already in force is left as it is (revoking it again changes nothing); cut-offs are
    /// always recorded, since tokens may have been issued since the last one. A revoked access
    /// token's status-list entry, if it has one, is set in the same transaction.
    async fn add_revocation(
        &self,
        kind: RevocationKind,
        value: &str,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
        audit: &AuditEvent,
        status: Option<StatusRef>,
    ) -> Result<RevocationAdded, StoreError>;

    /// Revocations still in force at `now` with an id above `after`, in id order.
    async fn list_revocations(
        &self,
        after: i64,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Revocation>, StoreError>;

    /// Offboarding or a client's compromise, in one transaction: every live session of the
    /// user (`Subject`) or client (`Client`) and its refresh tokens revoked, a cut-off recorded
    /// for its access tokens (in force until `cutoff_expires_at`) and a `Session` revocation for
    /// each session revoked (a refresh that committed just before carries the `sid` of one), the
    /// user or client disabled if asked, the audit event written. Returns the sessions revoked.
    /// A principal with nothing new to revoke (no live session, already disabled, and cut off
    /// since it was disabled) is left as it is: nothing written, announced or audited.
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
