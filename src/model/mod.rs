//! Plain data shared by every layer: no I/O, no framework types. Uses: nothing.

use std::fmt;
use std::str::FromStr;

mod refresh;
mod roles;

pub use refresh::{RefreshTokenRecord, RefreshTokenState, SessionState, Successor, Verdict};
pub use roles::{HELD_SEPARATOR, HeldRoles, Role, is_role_name, lost_scopes};

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

/// The grants Tessera implements (RFC 6749 §4.1, §4.3, §4.4, §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GrantType {
    AuthorizationCode,
    ClientCredentials,
    Password,
    RefreshToken,
}

impl GrantType {
    pub const ALL: [GrantType; 4] = [
        Self::AuthorizationCode,
        Self::ClientCredentials,
        Self::Password,
        Self::RefreshToken,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
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
    /// When the current secret was made; `None` for a public client.
    pub secret_created_at: Option<time::OffsetDateTime>,
    /// This client's own secret lifetime, in place of the global one.
    pub secret_max_age: Option<std::time::Duration>,
    /// The secret a rotation replaced, accepted until its `expires_at`.
    pub previous_secret: Option<PreviousSecret>,
    /// Where /authorize may send the browser back (exact strings; loopback http with any
    /// port, RFC 8252 §7.3).
    pub redirect_uris: Vec<String>,
    /// May skip the consent page (set by an admin).
    pub first_party: bool,
}

/// The secret a rotation replaced, still accepted during the rotation's overlap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousSecret {
    /// Never [`ClientSecretHash::None`].
    pub secret: ClientSecretHash,
    /// The end of the overlap, or the old secret's own expiry if that comes first.
    pub expires_at: time::OffsetDateTime,
}

impl Client {
    pub fn is_public(&self) -> bool {
        self.secret == ClientSecretHash::None
    }

    /// When the current secret stops working: its creation plus this client's max age, or else
    /// `default_max_age`. Only a generated secret expires: an operator-chosen one (the
    /// bootstrap admin's) is the operator's to change, and a public client has none.
    pub fn secret_expires_at(
        &self,
        default_max_age: Option<std::time::Duration>,
    ) -> Option<time::OffsetDateTime> {
        let ClientSecretHash::Digest(_) = self.secret else {
            return None;
        };
        let max_age = self.secret_max_age.or(default_max_age)?;
        Some(self.secret_created_at? + max_age)
    }

    pub fn allows(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }

    /// Exact string comparison with a registered URI (RFC 9700 §4.1.3), except that a
    /// registered loopback `http` URI matches with any port (RFC 8252 §7.3): native apps bind
    /// an ephemeral port. The presented URI must then be in its normalised form, so nothing
    /// but the port may differ.
    pub fn redirect_uri_matches(&self, uri: &str) -> bool {
        self.redirect_uris
            .iter()
            .any(|registered| registered == uri || loopback_match(registered, uri))
    }
}

/// The two loopback hosts a redirect URI may use over plain `http` (RFC 8252 §7.3, §8.3:
/// not `localhost`).
pub fn is_loopback_http(uri: &url::Url) -> bool {
    uri.scheme() == "http"
        && match uri.host() {
            Some(url::Host::Ipv4(ip)) => ip == std::net::Ipv4Addr::LOCALHOST,
            Some(url::Host::Ipv6(ip)) => ip == std::net::Ipv6Addr::LOCALHOST,
            _ => false,
        }
}

fn loopback_match(registered: &str, presented: &str) -> bool {
    let (Ok(mut registered), Ok(mut presented_url)) =
        (url::Url::parse(registered), url::Url::parse(presented))
    else {
        return false;
    };
    // Only the port may differ: the presented URI is already in normal form, has no
    // fragment, and equals the registered one once both ports are dropped.
    is_loopback_http(&registered)
        && presented_url.as_str() == presented
        && presented_url.fragment().is_none()
        && registered.set_port(None).is_ok()
        && presented_url.set_port(None).is_ok()
        && registered == presented_url
}

/// How a client has been used, as recorded in batches (CONTRACT: client credential hygiene).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientUsage {
    /// The last successful authentication.
    pub last_used_at: Option<time::OffsetDateTime>,
    /// Each scope with the last time a token carrying it was issued to the client.
    pub scopes: Vec<(String, time::OffsetDateTime)>,
}

impl ClientUsage {
    /// Keeps the later of two times for the same thing: instances merge this way.
    pub fn merge(&mut self, other: &ClientUsage) {
        if let Some(at) = other.last_used_at {
            self.used(at);
        }
        for (scope, at) in &other.scopes {
            self.issued(scope, *at);
        }
    }

    pub fn used(&mut self, at: time::OffsetDateTime) {
        self.last_used_at = Some(self.last_used_at.map_or(at, |t| t.max(at)));
    }

    /// Allocates only for a scope not seen yet.
    pub fn issued(&mut self, scope: &str, at: time::OffsetDateTime) {
        match self.scopes.iter_mut().find(|(s, _)| s == scope) {
            Some((_, last)) => *last = (*last).max(at),
            None => self.scopes.push((scope.to_owned(), at)),
        }
    }

    pub fn scope_last_issued(&self, scope: &str) -> Option<time::OffsetDateTime> {
        self.scopes
            .iter()
            .find(|(s, _)| s == scope)
            .map(|(_, at)| *at)
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

/// A signed-in browser (CONTRACT: browser sign-in). The cookie value is never stored: only its
/// SHA-256, which is no field here either.
#[derive(Debug, Clone)]
pub struct BrowserSession {
    pub browser_session_id: uuid::Uuid,
    pub user_id: uuid::Uuid,
    pub source_addr: Option<String>,
    pub created_at: time::OffsetDateTime,
    /// Absolute: never extended.
    pub expires_at: time::OffsetDateTime,
    /// The idle clock: touched by every use.
    pub last_seen_at: time::OffsetDateTime,
}

/// An authorization code as stored (RFC 6749 §4.1.2): bound to its client, redirect URI and
/// PKCE challenge (RFC 7636 §4.4), single use.
#[derive(Debug, Clone)]
pub struct AuthorizationCode {
    pub code_digest: [u8; 32],
    pub client_id: String,
    pub user_id: uuid::Uuid,
    pub browser_session_id: Option<uuid::Uuid>,
    pub redirect_uri: String,
    /// BASE64URL(SHA256(code_verifier)), the only method accepted (S256).
    pub code_challenge: String,
    /// What the user approved.
    pub scope: String,
    pub created_at: time::OffsetDateTime,
    pub expires_at: time::OffsetDateTime,
    /// When its exchange succeeded; a later exchange is reuse.
    pub used_at: Option<time::OffsetDateTime>,
    /// The login session its exchange created.
    pub session_id: Option<uuid::Uuid>,
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
    /// Every token naming the role in its `roles` claim, issued at or before the cut-off and
    /// carrying one of the entry's scopes (the role lost them, or was deleted).
    Role,
    /// Every token of the subject issued at or before the cut-off and carrying one of the
    /// entry's scopes (the user lost them with a role).
    SubjectScope,
}

impl RevocationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jti => "jti",
            Self::Session => "session",
            Self::Subject => "subject",
            Self::Client => "client",
            Self::Role => "role",
            Self::SubjectScope => "subject_scope",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Jti,
            Self::Session,
            Self::Subject,
            Self::Client,
            Self::Role,
            Self::SubjectScope,
        ]
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
    /// `Role` and `SubjectScope`: the scopes lost, space-separated.
    pub scopes: Option<String>,
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

/// Filters of GET /admin/clients; a client matches every filter given.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientFilter {
    /// Last used (or, never used, created) at or before this.
    pub unused_since: Option<time::OffsetDateTime>,
    /// A secret made at or before this (public clients have none).
    pub secret_created_before: Option<time::OffsetDateTime>,
}

/// Filters of GET /admin/audit.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub subject: Option<String>,
    pub client_id: Option<String>,
    pub event_type: Option<String>,
    pub limit: u32,
}

#[cfg(test)]
mod hygiene_tests {
    use super::*;
    use std::time::Duration;

    fn client(secret: ClientSecretHash, own: Option<u64>) -> Client {
        let t = time::OffsetDateTime::UNIX_EPOCH;
        Client {
            client_id: "web".into(),
            name: None,
            secret,
            grant_types: vec![GrantType::ClientCredentials],
            scopes: Vec::new(),
            audiences: Vec::new(),
            is_admin: false,
            can_introspect: false,
            disabled: false,
            created_at: t,
            updated_at: t,
            secret_created_at: Some(t + time::Duration::seconds(10)),
            secret_max_age: own.map(Duration::from_secs),
            previous_secret: None,
            redirect_uris: Vec::new(),
            first_party: false,
        }
    }

    #[test]
    fn a_generated_secret_expires_after_its_own_max_age_or_else_the_global_one() {
        let at = |s| Some(time::OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(s));
        let global = Some(Duration::from_secs(100));
        let generated = ClientSecretHash::Digest([1; 32]);
        assert_eq!(
            client(generated.clone(), None).secret_expires_at(None),
            None
        );
        assert_eq!(
            client(generated.clone(), None).secret_expires_at(global),
            at(110)
        );
        assert_eq!(
            client(generated.clone(), Some(60)).secret_expires_at(global),
            at(70)
        );
        assert_eq!(client(generated, Some(60)).secret_expires_at(None), at(70));
        // An operator-chosen secret never expires; a public client has none.
        let chosen = ClientSecretHash::Phc("$argon2id$...".into());
        assert_eq!(client(chosen, Some(60)).secret_expires_at(global), None);
        assert_eq!(
            client(ClientSecretHash::None, None).secret_expires_at(global),
            None
        );
    }

    #[test]
    fn usage_keeps_the_latest_time_of_each() {
        let at = |s| time::OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(s);
        let mut mine = ClientUsage::default();
        mine.used(at(5));
        mine.issued("read", at(5));
        let mut theirs = ClientUsage::default();
        theirs.used(at(3));
        theirs.issued("read", at(9));
        theirs.issued("write", at(1));
        mine.merge(&theirs);
        assert_eq!(mine.last_used_at, Some(at(5)));
        assert_eq!(mine.scope_last_issued("read"), Some(at(9)));
        assert_eq!(mine.scope_last_issued("write"), Some(at(1)));
        assert_eq!(mine.scope_last_issued("admin"), None);
    }
}
