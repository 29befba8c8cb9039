//! The audit log of security events. Uses: model.

use async_trait::async_trait;

use super::StoreError;
use crate::model::{AuditEvent, AuditFilter, AuditRecord};

#[async_trait]
pub trait AuditStore: Send + Sync {
    async fn add_audit_event(&self, event: &AuditEvent) -> Result<(), StoreError>;

    /// Newest first.
    async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError>;
}
