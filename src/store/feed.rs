//! The change feed: a version per topic, bumped by every write to the topic, and (on PostgreSQL) a notification of it. Uses: nothing.

use async_trait::async_trait;

use super::StoreError;

/// The change-feed topics.
pub mod topic {
    pub const KEYS: &str = "keys";
    pub const CLIENTS: &str = "clients";
    pub const REVOCATIONS: &str = "revocations";
}

/// The NOTIFY channel of the change feed.
pub const CHANGE_CHANNEL: &str = "tessera_changes";

#[async_trait]
pub trait ChangeFeed: Send + Sync {
    /// The version of every topic.
    async fn change_versions(&self) -> Result<Vec<(String, i64)>, StoreError>;

    /// Notifications of changes by any instance (PostgreSQL LISTEN); `None` where the backend
    /// has none (SQLite is single-instance, and polling the versions covers the CLI).
    async fn change_listener(&self) -> Result<Option<Box<dyn ChangeListener>>, StoreError>;
}

/// A stream of change announcements: each names the topic that changed.
#[async_trait]
pub trait ChangeListener: Send {
    async fn recv(&mut self) -> Result<String, StoreError>;
}
