//! Login sessions and their refresh tokens: a login, rotation (RFC 6749 §6) and a session's revocation. Uses: model.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreError;
use crate::model::{AuditEvent, NewRefreshToken, RefreshTokenRecord, Session};

/// What `add_session` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionAdded {
    Added,
    /// The user or the client was disabled (or removed) meanwhile: nothing stored.
    UserDisabled,
}

/// What a consume attempt found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consumed {
    /// Consumed, and the successor stored.
    Rotated,
    /// Another request consumed it first, or it or its session was revoked: nothing changed.
    NotLive,
}

/// One refresh-token rotation (RFC 6749 §6) to carry out: the presented token's digest, its
/// successor (sealed for the retry window, if there is one) and the rotation's `refresh` audit
/// event.
#[derive(Debug, Clone)]
pub struct Rotation {
    pub digest: [u8; 32],
    pub successor: NewRefreshToken,
    pub successor_ciphertext: Option<Vec<u8>>,
    pub now: OffsetDateTime,
    pub audit: AuditEvent,
}

/// What `revoke_session` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionRevocation {
    Revoked,
    /// Already revoked, or unknown.
    NotLive,
}

#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a session and, if given, its first refresh token, together, unless the user has
    /// been disabled meanwhile: a login racing an offboarding never outlives it.
    async fn add_session(
        &self,
        session: &Session,
        first: Option<&NewRefreshToken>,
    ) -> Result<SessionAdded, StoreError>;

    /// A refresh token by (session id, digest), with its state and its session's.
    async fn find_refresh_token(
        &self,
        session_id: uuid::Uuid,
        digest: &[u8; 32],
    ) -> Result<Option<RefreshTokenRecord>, StoreError>;

    /// Rotations, in one transaction that locks their sessions (in a fixed order): each
    /// consumes its token (keeping the successor sealed for the retry window, if there is one),
    /// stores the successor and records the rotation's `refresh` event, only while the token is
    /// unconsumed and unrevoked and the session unrevoked. One outcome per rotation, in order; a
    /// rotation that does not happen records nothing. Of two rotations of one token, at most one
    /// happens. An error means nothing was written (the transaction as a whole failed), so each
    /// rotation may be tried again.
    async fn consume_refresh_tokens(
        &self,
        rotations: &[Rotation],
    ) -> Result<Vec<Consumed>, StoreError>;

    /// Revokes a session and every refresh token in it, records a `session` revocation (for
    /// the access tokens carrying its `sid`, until `access_tokens_expire_at`) and, if given, an
    /// audit event: one transaction.
    async fn revoke_session(
        &self,
        session_id: uuid::Uuid,
        reason: &str,
        now: OffsetDateTime,
        access_tokens_expire_at: OffsetDateTime,
        audit: Option<&AuditEvent>,
    ) -> Result<SessionRevocation, StoreError>;
}
