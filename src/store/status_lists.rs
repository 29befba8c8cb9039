//! Token Status Lists (draft-ietf-oauth-status-list): index leases, client-credentials blocks, the builder's inputs and lease, and the signed lists every instance serves. Uses: model.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreError;

/// A run of `count` fresh indices `start..start + count` of list `list_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusLease {
    pub list_id: i64,
    pub start: i64,
    /// The list was created by this lease: nothing may reference it until its first signed
    /// token is stored (`store_status_list`).
    pub created: bool,
}

/// A list as the builder and the aggregation endpoint see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusListInfo {
    pub list_id: i64,
    /// The key whose tokens carry this list's indices.
    pub kid: String,
    pub size: i64,
    /// The change-feed version the stored token reflects.
    pub built_version: i64,
    pub built_at: Option<OffsetDateTime>,
    /// The key's state (`None` once the key row is gone) and when it stopped signing.
    pub key_state: Option<String>,
    pub key_ended_at: Option<OffsetDateTime>,
}

/// An index held by a login (a session row) or a rotation (a refresh-token row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionIndex {
    pub idx: i64,
    pub user_id: uuid::Uuid,
    pub client_id: String,
    /// When its access token was issued.
    pub issued_at: OffsetDateTime,
    pub session_revoked: bool,
}

/// Client-credentials tokens of one client in one period: index `base + (iat - period_start)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusBlock {
    pub base: i64,
    pub client_id: String,
    pub period_start: i64,
}

/// Everything a list's bits are computed from, read after the change-feed version.
#[derive(Debug, Clone, Default)]
pub struct StatusInputs {
    pub sessions: Vec<SessionIndex>,
    pub blocks: Vec<StatusBlock>,
    /// Indices set by a revocation by jti or a role change.
    pub marks: Vec<i64>,
    /// Cut-offs in force: (`subject` or `client`, value, revoked at).
    pub cutoffs: Vec<(String, String, OffsetDateTime)>,
    /// The clients that are not disabled: every token of any other client is inactive.
    pub enabled_clients: Vec<String>,
}

/// What housekeeping may delete: rows no live token can need any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusPurge {
    /// Client blocks whose period began before this (unix seconds).
    pub blocks_started_before: i64,
    /// Marks made before this.
    pub marks_before: OffsetDateTime,
    /// Lists last leased before this, with their blocks and marks: the list is no longer
    /// served and its id is never handed out again.
    pub lists_leased_before: OffsetDateTime,
}

/// What `acquire_status_builder` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuilderLease {
    Acquired,
    /// Another instance builds until its lease ends.
    HeldElsewhere,
}

#[async_trait]
pub trait StatusListStore: Send + Sync {
    /// Leases `count` fresh indices from the newest served list of `kid` that has room, or
    /// creates a list of `size` entries for `kid` and leases its first `count`; the list's
    /// `leased_at` becomes `now`.
    async fn lease_status_indices(
        &self,
        kid: &str,
        count: i64,
        size: i64,
        now: OffsetDateTime,
    ) -> Result<StatusLease, StoreError>;

    /// Records the block of `client_id` for the period starting at `period_start` (unix
    /// seconds) at `base`, unless one is recorded already; returns the base in force.
    async fn add_status_block(
        &self,
        list_id: i64,
        client_id: &str,
        period_start: i64,
        base: i64,
        now: OffsetDateTime,
    ) -> Result<i64, StoreError>;

    /// Every list that has been announced (its first token stored), in id order.
    async fn list_status_lists(&self) -> Result<Vec<StatusListInfo>, StoreError>;

    /// The inputs of one list's bits, with cut-offs in force at `now`. Tokens of sessions and
    /// rotations minted before `issued_since` are left out: none of them is live any more, and
    /// a list fills for hours, so a build reads the live part of it, not all of it.
    async fn status_inputs(
        &self,
        list_id: i64,
        now: OffsetDateTime,
        issued_since: OffsetDateTime,
    ) -> Result<StatusInputs, StoreError>;

    /// Stores a list's signed token (what every instance serves) and what it reflects.
    async fn store_status_list(
        &self,
        list_id: i64,
        token: &str,
        etag: &str,
        version: i64,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// A list's signed token and its ETag, once announced.
    async fn find_status_list(&self, list_id: i64) -> Result<Option<(String, String)>, StoreError>;

    /// One housekeeping batch: deletes up to `batch` rows of each kind past `horizon`.
    /// Returns the rows deleted (a list counts once, whatever it took with it).
    async fn purge_status_lists(
        &self,
        horizon: &StatusPurge,
        batch: u32,
    ) -> Result<u64, StoreError>;

    /// Takes or renews the builder lease for `holder` until `until`.
    async fn acquire_status_builder(
        &self,
        holder: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<BuilderLease, StoreError>;
}
