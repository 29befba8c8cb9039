//! The token policy: how long tokens live, and how long a rotated refresh token may be retried; `config` builds it from the settings. Uses: nothing.

use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct TokenPolicy {
    pub access_token_ttl: Duration,
    /// A refresh token unused this long expires.
    pub refresh_token_idle_ttl: Duration,
    /// No session is refreshed past this age.
    pub refresh_token_absolute_ttl: Duration,
    /// The retry window after a rotation: the old token gets the same successor again.
    pub refresh_reuse_grace: Duration,
    /// Past this without a successful revocation sync, introspection and readiness answer
    /// 503: a partitioned instance must not vouch for tokens revoked meanwhile.
    pub revocation_max_staleness: Duration,
    /// A generated client secret older than this is refused, unless its client has its own.
    pub client_secret_max_age: Option<Duration>,
    /// The Token Status List's `ttl` when lists are on (`TESSERA_STATUS_LIST`), else `None`.
    pub status_list_ttl: Option<Duration>,
    /// How concurrent rotations share a PostgreSQL transaction (group commit).
    pub refresh_batching: super::RotationBatching,
    /// An authorization code not exchanged this long expires (RFC 6749 §4.1.2: short).
    pub authorization_code_ttl: Duration,
    /// A browser session ends this long after sign-in, whatever its use.
    pub browser_session_ttl: Duration,
    /// A browser session unused this long ends.
    pub browser_session_idle_ttl: Duration,
}
