//! Registered clients (RFC 6749 §2). Every write is announced on the change feed. Uses: model.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreError;
use crate::model::{Client, ClientSecretHash};

/// What an update of one row found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    Done,
    NotFound,
}

#[async_trait]
pub trait ClientStore: Send + Sync {
    /// Every client, for the in-memory registry.
    async fn list_clients(&self) -> Result<Vec<Client>, StoreError>;

    async fn find_client(&self, client_id: &str) -> Result<Option<Client>, StoreError>;

    /// Registers a client; [`StoreError::Conflict`] if the id is taken.
    async fn add_client(&self, client: &Client) -> Result<(), StoreError>;

    /// Replaces a client's secret (the old one stops working at once). A public client has no
    /// secret to replace: `NotFound`, as for an unknown one.
    async fn update_client_secret(
        &self,
        client_id: &str,
        secret: &ClientSecretHash,
        now: OffsetDateTime,
    ) -> Result<Update, StoreError>;

    /// Enables or disables a client.
    async fn set_client_disabled(
        &self,
        client_id: &str,
        disabled: bool,
        now: OffsetDateTime,
    ) -> Result<Update, StoreError>;
}
