//! Plain data shared by every layer: no I/O, no framework types. Uses: nothing.

use std::fmt;
use std::str::FromStr;

mod refresh;

pub use refresh::{RefreshTokenRecord, RefreshTokenState, SessionState, Successor, Verdict};

/// The JWS algorithms Tessera signs with (RFC 7518 §3, RFC 8037). Verification is pinned to the
/// algorithm of our own key; a token's `alg` header never chooses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigningAlg {
    Es256,
    EdDsa,
    Rs256,
    Ps256,
}

impl SigningAlg {
    pub const ALL: [SigningAlg; 4] = [Self::Es256, Self::EdDsa, Self::Rs256, Self::Ps256];

    /// The JOSE name, as in a JWS header and a JWK's `alg`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
            Self::Rs256 => "RS256",
            Self::Ps256 => "PS256",
        }
    }
}

impl fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SigningAlg {
    type Err = UnknownAlg;

    /// Exact JOSE names only: `alg` values are case-sensitive (RFC 7515 §4.1.1).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|alg| alg.as_str() == s)
            .ok_or(UnknownAlg)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("must be one of ES256, EdDSA, RS256, PS256")]
pub struct UnknownAlg;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alg_names_round_trip_and_are_case_sensitive() {
        for alg in SigningAlg::ALL {
            assert_eq!(alg.as_str().parse::<SigningAlg>().unwrap(), alg);
        }
        assert!("es256".parse::<SigningAlg>().is_err());
        assert!("HS256".parse::<SigningAlg>().is_err());
        assert!("none".parse::<SigningAlg>().is_err());
    }
}

/// Where a signing key is in its life (CONTRACT: GET /admin/keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyState {
    /// Published, not yet signing: verifiers learn it before it signs.
    Next,
    /// Signs new tokens; exactly one.
    Active,
    /// Published while tokens it signed may still be live.
    Retired,
    /// Compromised: out of the JWKS at once, its tokens inactive.
    Revoked,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Next => "next",
            Self::Active => "active",
            Self::Retired => "retired",
            Self::Revoked => "revoked",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Next, Self::Active, Self::Retired, Self::Revoked]
            .into_iter()
            .find(|state| state.as_str() == s)
    }
}

/// A signing key as stored: the public JWK, and the private JWK sealed under the master key.
#[derive(Debug, Clone)]
pub struct SigningKey {
    pub kid: String,
    pub alg: SigningAlg,
    pub state: KeyState,
    pub public_jwk: String,
    pub private_key_ciphertext: Vec<u8>,
    pub created_at: time::OffsetDateTime,
    pub activated_at: Option<time::OffsetDateTime>,
    pub retired_at: Option<time::OffsetDateTime>,
    pub revoked_at: Option<time::OffsetDateTime>,
}

/// A freshly generated key, not yet stored.
#[derive(Debug, Clone)]
pub struct NewSigningKey {
    pub kid: String,
    pub alg: SigningAlg,
    pub public_jwk: String,
    pub private_key_ciphertext: Vec<u8>,
}

/// The grants Tessera implements (RFC 6749 §4.3, §4.4, §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GrantType {
    ClientCredentials,
    Password,
    RefreshToken,
}

impl GrantType {
    pub const ALL: [GrantType; 3] = [Self::ClientCredentials, Self::Password, Self::RefreshToken];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientCredentials => "client_credentials",
            Self::Password => "password",
            Self::RefreshToken => "refresh_token",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == s)
    }
}

/// How a client proves who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientSecretHash {
    /// A public client: no secret (RFC 6749 §2.1).
    None,
    /// SHA-256 of a server-generated `tss_` secret.
    Digest([u8; 32]),
    /// argon2id PHC string of an operator-chosen secret (the configured bootstrap admin).
    Phc(String),
}

/// A registered client (RFC 6749 §2).
#[derive(Debug, Clone)]
pub struct Client {
    pub client_id: String,
    pub name: Option<String>,
    pub secret: ClientSecretHash,
    pub grant_types: Vec<GrantType>,
    pub scopes: Vec<String>,
    pub audiences: Vec<String>,
    pub is_admin: bool,
    pub can_introspect: bool,
    pub disabled: bool,
    pub created_at: time::OffsetDateTime,
    pub updated_at: time::OffsetDateTime,
}

impl Client {
    pub fn is_public(&self) -> bool {
        self.secret == ClientSecretHash::None
    }

    pub fn allows(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }
}

/// A user who logs in with the password grant; `user_id` is the `sub` of their tokens.
#[derive(Debug, Clone)]
pub struct User {
    pub user_id: uuid::Uuid,
    pub username: String,
    /// NFKC + case fold of the username: one account per visual name.
    pub username_key: String,
    pub password_phc: String,
    pub disabled: bool,
    pub created_at: time::OffsetDateTime,
    pub updated_at: time::OffsetDateTime,
}

/// A login session: the family of refresh tokens descended from one password login. Its id is
/// the `sid` claim.
#[derive(Debug, Clone)]
pub struct Session {
    pub session_id: uuid::Uuid,
    pub client_id: String,
    pub user_id: uuid::Uuid,
    pub scope: String,
    pub created_at: time::OffsetDateTime,
    pub expires_at: time::OffsetDateTime,
    /// The status-list entry of the access token issued with the login, if lists are on.
    pub status: Option<StatusRef>,
}

/// Where an access token's status is published (draft-ietf-oauth-status-list §6.2): an entry
/// of one of our lists. Indices are never handed out twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusRef {
    pub list_id: i64,
    pub idx: i64,
}

/// A successor about to be stored.
#[derive(Debug, Clone)]
pub struct NewRefreshToken {
    pub session_id: uuid::Uuid,
    pub token_digest: [u8; 32],
    pub scope: String,
    pub created_at: time::OffsetDateTime,
    pub idle_expires_at: time::OffsetDateTime,
    /// The status-list entry of the access token issued with it by a rotation (and again by a
    /// retry of that rotation), if lists are on.
    pub access_status: Option<StatusRef>,
}

/// A security event for the audit log. Never holds a secret, a password or a token.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub event_type: &'static str,
    pub actor: Option<String>,
    pub subject: Option<String>,
    pub client_id: Option<String>,
    pub session_id: Option<uuid::Uuid>,
    pub source_addr: Option<String>,
    pub detail: serde_json::Value,
    pub created_at: time::OffsetDateTime,
}

/// What a revocation entry covers (CONTRACT: POST /revoke).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RevocationKind {
    /// One access token, by `jti`, until its `exp`.
    Jti,
    /// Every token carrying the `sid`.
    Session,
    /// Every token of the subject issued at or before the cut-off.
    Subject,
    /// Every token of the client issued at or before the cut-off.
    Client,
}

impl RevocationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jti => "jti",
            Self::Session => "session",
            Self::Subject => "subject",
            Self::Client => "client",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Jti, Self::Session, Self::Subject, Self::Client]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// A stored revocation.
#[derive(Debug, Clone)]
pub struct Revocation {
    pub revocation_id: i64,
    pub kind: RevocationKind,
    pub value: String,
    pub revoked_at: time::OffsetDateTime,
    pub expires_at: time::OffsetDateTime,
}

/// A stored audit event, as the admin API lists it.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub audit_event_id: i64,
    pub created_at: time::OffsetDateTime,
    pub event_type: String,
    pub actor: Option<String>,
    pub subject: Option<String>,
    pub client_id: Option<String>,
    pub session_id: Option<String>,
    pub source_addr: Option<String>,
    pub detail: serde_json::Value,
}

/// Filters of GET /admin/audit.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub subject: Option<String>,
    pub client_id: Option<String>,
    pub event_type: Option<String>,
    pub limit: u32,
}
