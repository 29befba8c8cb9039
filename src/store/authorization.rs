//! Browser sign-in: browser sessions and authorization codes (RFC 6749 §4.1, RFC 7636), the code consumed in the transaction that creates its login session. Uses: model.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreError;
use crate::model::{AuthorizationCode, BrowserSession, NewRefreshToken, Session};

/// What `redeem_authorization_code` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeRedeemed {
    /// The code is used now, and the session (with its first refresh token) stored.
    Redeemed,
    /// Used by another exchange first, expired or unknown: nothing changed.
    NotLive,
    /// The user or the client was disabled (or removed) meanwhile: nothing changed.
    UserDisabled,
}

#[async_trait]
pub trait AuthorizationStore: Send + Sync {
    /// Stores a browser session under the digest of its cookie value.
    async fn add_browser_session(
        &self,
        session: &BrowserSession,
        digest: &[u8; 32],
    ) -> Result<(), StoreError>;

    /// The browser session of a cookie digest, with its idle clock set to `now`, if it is
    /// unended, before its absolute expiry, seen after `idle_since`, and its user enabled. One
    /// statement: a session found is a session touched.
    async fn touch_browser_session(
        &self,
        digest: &[u8; 32],
        now: OffsetDateTime,
        idle_since: OffsetDateTime,
    ) -> Result<Option<BrowserSession>, StoreError>;

    /// Ends a browser session (logout); `false` if it had ended already or is unknown.
    async fn end_browser_session(
        &self,
        digest: &[u8; 32],
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    async fn add_authorization_code(&self, code: &AuthorizationCode) -> Result<(), StoreError>;

    /// A code by digest, used or not, expired or not: reuse detection needs the used ones.
    async fn find_authorization_code(
        &self,
        digest: &[u8; 32],
    ) -> Result<Option<AuthorizationCode>, StoreError>;

    /// One transaction: marks the code used (only if unused and unexpired at `now`), stores
    /// the session and, if given, its first refresh token, and records the session on the code,
    /// unless the user or the client has been disabled meanwhile. Of two concurrent exchanges,
    /// exactly one redeems.
    async fn redeem_authorization_code(
        &self,
        digest: &[u8; 32],
        session: &Session,
        first: Option<&NewRefreshToken>,
        now: OffsetDateTime,
    ) -> Result<CodeRedeemed, StoreError>;
}
