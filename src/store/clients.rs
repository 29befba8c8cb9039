//! Registered clients (RFC 6749 §2). Every write is announced on the change feed. Uses: model.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreError;
use crate::model::{AuditEvent, Client, ClientFilter, ClientSecretHash, ClientUsage};

/// What an update of one row found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    Done,
    NotFound,
}

/// A new secret for a client (CONTRACT: POST /admin/clients/{id}/secret).
#[derive(Debug, Clone, Copy)]
pub struct SecretRotation<'a> {
    pub secret: &'a ClientSecretHash,
    /// Until when the replaced secret keeps working; `None`: it stops at once.
    pub previous_expires_at: Option<OffsetDateTime>,
    /// The client's own secret lifetime from now on; `None` keeps what it had.
    pub secret_max_age: Option<std::time::Duration>,
}

/// What PATCH /admin/clients/{id} changes of a client; `None` leaves a part as it is.
#[derive(Debug, Clone, Default)]
pub struct ClientChange {
    /// Disables (it can no longer authenticate) or enables the client again.
    pub disabled: Option<bool>,
    /// Replaces the list.
    pub redirect_uris: Option<Vec<String>>,
    /// May skip the consent page.
    pub first_party: Option<bool>,
}

#[async_trait]
pub trait ClientStore: Send + Sync {
    /// Every client, for the in-memory registry.
    async fn list_clients(&self) -> Result<Vec<Client>, StoreError>;

    async fn find_client(&self, client_id: &str) -> Result<Option<Client>, StoreError>;

    /// Registers a client; [`StoreError::Conflict`] if the id is taken.
    async fn add_client(&self, client: &Client) -> Result<(), StoreError>;

    /// Replaces a client's secret. The secret it replaces (the one stored at the write, read in
    /// the same statement, so two rotations at once lose no shown secret) becomes the previous
    /// one until `previous_expires_at`, or stops at once without it; an earlier previous secret
    /// is dropped either way. A public client has no secret to replace: `NotFound`, as for an
    /// unknown one.
    async fn update_client_secret(
        &self,
        client_id: &str,
        rotation: &SecretRotation<'_>,
        now: OffsetDateTime,
    ) -> Result<Update, StoreError>;

    /// The clients matching `filter`, by id.
    async fn find_clients(&self, filter: &ClientFilter) -> Result<Vec<Client>, StoreError>;

    /// Merges use recorded in memory: a stored time is replaced only by a later one, so
    /// instances flushing in any order converge. Clients that no longer exist are skipped. Not
    /// announced on the change feed: no instance keeps usage in its registry.
    async fn record_client_usage(&self, usage: &[(String, ClientUsage)]) -> Result<(), StoreError>;

    /// The recorded use of one client, or of every client, by id.
    async fn client_usage(
        &self,
        client_id: Option<&str>,
    ) -> Result<Vec<(String, ClientUsage)>, StoreError>;

    /// Changes the parts given (already validated), records the audit events and announces
    /// the change, all in one transaction: a failure anywhere leaves the client as it was and
    /// nothing recorded. Disabling the last enabled admin is refused ([`StoreError::LastAdmin`]),
    /// the enabled admins counted (and, on PostgreSQL, locked) in that transaction.
    async fn update_client(
        &self,
        client_id: &str,
        change: &ClientChange,
        audit: &[AuditEvent],
        now: OffsetDateTime,
    ) -> Result<Update, StoreError>;
}
