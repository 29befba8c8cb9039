//! Signing keys in memory: the active signer, the published verifiers and the precomputed JWKS; rotation with publish-ahead, compromise revocation, access-token minting (RFC 9068) and pinned verification. Uses: store, crypto, clock, model.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::clock::Clock;
use crate::crypto::MasterKey;
use crate::crypto::keys::{self, KeyError, Signer, Verifier};
use crate::model::{KeyState, NewSigningKey, SigningAlg, SigningKey, StatusRef};
use crate::store::{KeyRotation, KeysAdded, Rewrap, Store, StoreError, topic};
/// Why a token was refused: the verifier crate's causes. Introspection answers every case the
/// same way (`active: false`).
pub use tessera_verifier::Rejection;

/// Tolerated clock difference between instances, for `iat`/`nbf` and for how long a retired
/// key stays published after the last token it signed could expire.
pub const CLOCK_SKEW: Duration = Duration::from_secs(60);

/// What the master-key check row decrypts to.
const MASTER_KEY_CHECK: &[u8] = b"tessera master key check v1";

#[derive(Debug, Clone, Copy)]
pub struct KeyPolicy {
    pub alg: SigningAlg,
    pub access_token_ttl: Duration,
    pub jwks_max_age: Duration,
    pub rotation_interval: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyRingError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "the master key does not match the one this database was set up with; signing keys were left untouched"
    )]
    WrongMasterKey,
    #[error("signing key: {0}")]
    Key(#[from] KeyError),
    /// Rotating now would let a key sign before verifiers with a cached JWKS have seen it.
    #[error(
        "the next key has been published for less than the JWKS max-age; retry in {retry_after_seconds} s or force"
    )]
    NextKeyTooNew { retry_after_seconds: u64 },
    #[error("the key set changed meanwhile; nothing was done")]
    Conflict,
    #[error("no such key")]
    UnknownKey,
    #[error("no active signing key is loaded")]
    NoActiveKey,
}

/// One key as the admin listing shows it (CONTRACT: GET /admin/keys).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct KeyInfo {
    pub kid: String,
    pub alg: &'static str,
    /// `next`, `active`, `retired` or `revoked`.
    pub state: &'static str,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub activated_at: Option<OffsetDateTime>,
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub retired_at: Option<OffsetDateTime>,
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub revoked_at: Option<OffsetDateTime>,
}

/// The key set as loaded at one moment; replaced whole when keys change.
pub struct KeySnapshot {
    /// The change-feed version this snapshot was loaded at.
    version: i64,
    signer: Option<Arc<Signer>>,
    /// Published keys only: never a revoked one, never a retired one past its window.
    verifiers: HashMap<String, Verifier>,
    pub jwks: Bytes,
    pub etag: String,
    pub keys: Vec<KeyInfo>,
    next: Option<(String, OffsetDateTime)>,
    active_since: Option<OffsetDateTime>,
    /// When a retired key leaves the JWKS, so the snapshot must be rebuilt.
    rebuild_at: Option<OffsetDateTime>,
}

impl KeySnapshot {
    pub fn has_signer(&self) -> bool {
        self.signer.is_some()
    }

    pub fn active_kid(&self) -> Option<&str> {
        self.signer.as_ref().map(|s| s.kid.as_str())
    }

    pub fn next_kid(&self) -> Option<&str> {
        self.next.as_ref().map(|(kid, _)| kid.as_str())
    }
}

/// The claims of an access token (RFC 9068 §2.2); nothing else, so no personal data travels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// RFC 9068 §2.2.3.1: the roles that granted the token's scopes (user tokens only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    /// draft-ietf-oauth-status-list §6.1: where resource servers find this token's status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<TokenStatus>,
}

/// The `status` claim: `{"status_list": {"idx", "uri"}}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TokenStatus {
    pub status_list: StatusListEntry,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StatusListEntry {
    pub idx: i64,
    pub uri: String,
}

/// The path of a status list under the issuer.
pub const STATUS_LIST_PATH: &str = "/statuslists/";

impl TokenStatus {
    pub fn new(issuer: &str, status: StatusRef) -> Self {
        Self {
            status_list: StatusListEntry {
                idx: status.idx,
                uri: status_list_uri(issuer, status.list_id),
            },
        }
    }

    /// The entry, if the URI names one of `issuer`'s lists.
    pub fn entry(&self, issuer: &str) -> Option<StatusRef> {
        let id = self
            .status_list
            .uri
            .strip_prefix(issuer)?
            .strip_prefix(STATUS_LIST_PATH)?;
        Some(StatusRef {
            list_id: id.parse().ok()?,
            idx: self.status_list.idx,
        })
    }
}

/// `<issuer>/statuslists/<id>`: the list's `sub` and the tokens' `uri`.
pub fn status_list_uri(issuer: &str, list_id: i64) -> String {
    format!("{issuer}{STATUS_LIST_PATH}{list_id}")
}

/// What a minted token is for; the key ring adds iss, iat, exp and jti.
#[derive(Debug, Clone)]
pub struct AccessTokenRequest<'a> {
    pub subject: &'a str,
    pub client_id: &'a str,
    pub audience: &'a str,
    pub scope: Option<&'a str>,
    pub session_id: Option<&'a str>,
    /// The roles that granted the scope (none for a client acting for itself).
    pub roles: Option<&'a [String]>,
    /// When the token counts as issued: a user's token takes the moment before its scopes were
    /// read, so a role change committed after that read cuts it off. `None` is now.
    pub issued_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone)]
pub struct MintedToken {
    pub token: String,
    pub claims: AccessTokenClaims,
}

pub struct KeyRing {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    master: Arc<MasterKey>,
    policy: KeyPolicy,
    issuer: String,
    current: RwLock<Arc<KeySnapshot>>,
    /// Our issuer, any audience (introspection answers for every resource server), the clock
    /// skew as leeway.
    rules: tessera_verifier::Rules,
}

impl KeyRing {
    /// Checks the master key against the database, creates the first keys if there are none,
    /// and loads them. A wrong master key stops here, before anything is written.
    pub async fn start(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        master: Arc<MasterKey>,
        policy: KeyPolicy,
        issuer: String,
    ) -> Result<Self, KeyRingError> {
        let now = clock.now();
        let check = match store.find_master_key_check().await? {
            Some(check) => check,
            None => {
                store
                    .add_master_key_check(&master.seal_check(MASTER_KEY_CHECK)?, now)
                    .await?
            }
        };
        match master.open_check(&check) {
            Ok(plain) if plain == MASTER_KEY_CHECK => {}
            _ => return Err(KeyRingError::WrongMasterKey),
        }
        if store.list_signing_keys().await?.is_empty() {
            let active = generate(policy.alg, &master).await?;
            let next = generate(policy.alg, &master).await?;
            if store.add_initial_signing_keys(&active, &next, now).await? == KeysAdded::Added {
                tracing::info!(active = %active.kid, next = %next.kid, alg = %policy.alg, "created the first signing keys");
            }
        }
        let ring = Self {
            store,
            clock,
            master,
            policy,
            rules: tessera_verifier::Rules::new(issuer.clone()).leeway(CLOCK_SKEW),
            issuer,
            current: RwLock::new(Arc::new(empty_snapshot())),
        };
        ring.reload().await?;
        Ok(ring)
    }

    pub fn snapshot(&self) -> Arc<KeySnapshot> {
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn policy(&self) -> &KeyPolicy {
        &self.policy
    }

    /// Loads the keys from the database and swaps in a new snapshot.
    pub async fn reload(&self) -> Result<(), KeyRingError> {
        let version = self.keys_version().await?;
        let keys = self.store.list_signing_keys().await?;
        let snapshot =
            build_snapshot(version, &keys, &self.master, &self.policy, self.clock.now())?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(snapshot);
        Ok(())
    }

    async fn keys_version(&self) -> Result<i64, StoreError> {
        Ok(super::feed_version(
            &self.store.change_versions().await?,
            topic::KEYS,
        ))
    }

    /// Reloads if the feed moved or a retired key's window closed. Returns whether it did.
    pub async fn sync(&self) -> Result<bool, KeyRingError> {
        let version = self.keys_version().await?;
        self.sync_to(version).await
    }

    /// As [`Self::sync`], with the feed version already read.
    pub async fn sync_to(&self, version: i64) -> Result<bool, KeyRingError> {
        let current = self.snapshot();
        let window_closed = current.rebuild_at.is_some_and(|at| self.clock.now() >= at);
        if version != current.version || window_closed {
            self.reload().await?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Promotes the next key, retires the active one and publishes a new next key. Refuses,
    /// unless `force`, while the next key is younger than the JWKS max-age.
    pub async fn rotate(&self, force: bool) -> Result<String, KeyRingError> {
        self.sync().await?;
        let snapshot = self.snapshot();
        let (next_kid, published_at) = snapshot.next.clone().ok_or(KeyRingError::NoActiveKey)?;
        let now = self.clock.now();
        let ready_at = published_at + self.policy.jwks_max_age;
        if now < ready_at && !force {
            // Rounded up: retrying after the advertised wait must find the key ready.
            let wait = ready_at - now;
            let wait = (wait.whole_seconds() + i64::from(wait.subsec_nanoseconds() > 0)).max(1);
            let wait = u64::try_from(wait).unwrap_or(1);
            return Err(KeyRingError::NextKeyTooNew {
                retry_after_seconds: wait,
            });
        }
        let new_next = generate(self.policy.alg, &self.master).await?;
        if self
            .store
            .rotate_signing_keys(&next_kid, &new_next, now)
            .await?
            == KeyRotation::Skipped
        {
            return Err(KeyRingError::Conflict);
        }
        tracing::info!(active = %next_kid, next = %new_next.kid, "signing key rotated");
        self.reload().await?;
        Ok(next_kid)
    }

    /// Rotates when the active key has signed for the rotation interval. Only one instance
    /// succeeds (and gets the new active kid); the others find the key set changed and stand
    /// down.
    pub async fn rotate_if_due(&self) -> Result<Option<String>, KeyRingError> {
        let snapshot = self.snapshot();
        let Some(since) = snapshot.active_since else {
            return Ok(None);
        };
        if self.clock.now() < since + self.policy.rotation_interval {
            return Ok(None);
        }
        match self.rotate(false).await {
            Ok(kid) => Ok(Some(kid)),
            Err(KeyRingError::Conflict | KeyRingError::NextKeyTooNew { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Compromise: the key leaves the JWKS at once and every token it signed stops verifying;
    /// if it was signing, the next key takes over and a new next key is published.
    /// The audit event, if given, is written with the revocation (not for a key already revoked).
    pub async fn revoke(
        &self,
        kid: &str,
        audit: Option<&crate::model::AuditEvent>,
    ) -> Result<KeyState, KeyRingError> {
        let replacement = generate(self.policy.alg, &self.master).await?;
        let previous = self
            .store
            .revoke_signing_key(kid, &replacement, self.clock.now(), audit)
            .await?
            .ok_or(KeyRingError::UnknownKey)?;
        tracing::warn!(%kid, previous_state = previous.as_str(), "signing key revoked");
        self.reload().await?;
        Ok(previous)
    }

    /// Mints an RFC 9068 access token with the active key. Touches neither the database nor
    /// the master key: the signer was decrypted when the key set was loaded.
    pub fn mint(&self, request: &AccessTokenRequest<'_>) -> Result<MintedToken, KeyRingError> {
        let signer = self.signer()?;
        let issued_at = request.issued_at.unwrap_or_else(|| self.clock.now());
        Ok(self.mint_with(&signer, issued_at, request, None)?)
    }

    /// The active key's signer, for a caller that must know the `kid` before minting (a
    /// status-list entry is taken from that key's list).
    pub fn signer(&self) -> Result<Arc<Signer>, KeyRingError> {
        self.snapshot()
            .signer
            .clone()
            .ok_or(KeyRingError::NoActiveKey)
    }

    /// Mints with `signer`, issued at `issued_at` (the request's own is ignored), with a
    /// status-list entry if given.
    pub fn mint_with(
        &self,
        signer: &Signer,
        issued_at: OffsetDateTime,
        request: &AccessTokenRequest<'_>,
        status: Option<StatusRef>,
    ) -> Result<MintedToken, KeyError> {
        let now = issued_at.unix_timestamp();
        let claims = AccessTokenClaims {
            iss: self.issuer.clone(),
            sub: request.subject.to_owned(),
            aud: request.audience.to_owned(),
            exp: now + self.policy.access_token_ttl.as_secs() as i64,
            iat: now,
            jti: jti(issued_at),
            client_id: request.client_id.to_owned(),
            scope: request.scope.filter(|s| !s.is_empty()).map(str::to_owned),
            sid: request.session_id.map(str::to_owned),
            nbf: None,
            roles: request
                .roles
                .filter(|r| !r.is_empty())
                .map(<[String]>::to_vec),
            status: status.map(|s| TokenStatus::new(&self.issuer, s)),
        };
        let payload = serde_json::to_vec(&claims).expect("claims serialise");
        let token = signer.sign(&payload)?;
        Ok(MintedToken { token, claims })
    }

    /// Checks a token against our own published keys and our issuer with tessera-verifier's
    /// rules: signature with the key its kid names (alg fixed by that key), typ, iss, exp, nbf
    /// and iat.
    pub fn verify(&self, token: &str) -> Result<AccessTokenClaims, Rejection> {
        let snapshot = self.snapshot();
        self.rules.verify(
            token,
            |kid| snapshot.verifiers.get(kid),
            self.clock.now().unix_timestamp(),
        )
    }
}

/// Why `rotate_master_key` changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum MasterKeyRotationError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the database has no master-key check yet: start the server once first")]
    NotSetUp,
    #[error(
        "the configured master key (or TESSERA_MASTER_KEY_PREVIOUS) does not open the database's keys; nothing was changed"
    )]
    WrongMasterKey,
    #[error("encrypting under the new master key failed: {0}")]
    Key(#[from] KeyError),
    #[error(
        "the signing keys kept changing during the rotation; nothing was changed: run it again"
    )]
    Busy,
}

/// Attempts before `rotate_master_key` gives up on a key set that keeps changing under it.
const MASTER_KEY_ROTATION_ATTEMPTS: usize = 3;

/// Re-encrypts the master-key check and every signing key (revoked and retired ones too) under
/// `new`, in one transaction: afterwards the database opens with `new` alone. `current` (with
/// its previous key, if configured) must open everything; a key added or changed meanwhile
/// makes the transaction change nothing, and the rotation is tried again. Returns the number of
/// signing keys re-encrypted. Kids, public keys and key states do not change, so every token
/// issued before still verifies.
pub async fn rotate_master_key(
    store: &dyn Store,
    current: &MasterKey,
    new: &MasterKey,
) -> Result<usize, MasterKeyRotationError> {
    type E = MasterKeyRotationError;
    for _ in 0..MASTER_KEY_ROTATION_ATTEMPTS {
        let check = store.find_master_key_check().await?.ok_or(E::NotSetUp)?;
        match current.open_check(&check) {
            Ok(plain) if plain == MASTER_KEY_CHECK => {}
            _ => return Err(E::WrongMasterKey),
        }
        let check = Rewrap {
            kid: String::new(),
            new: new.seal_check(MASTER_KEY_CHECK)?,
            old: check,
        };
        let mut rewrapped = Vec::new();
        for key in store.list_signing_keys().await? {
            let new = current
                .rewrap_signing_key(&key.private_key_ciphertext, &key.kid, new)
                .map_err(|e| match e {
                    KeyError::Decrypt => E::WrongMasterKey,
                    other => E::Key(other),
                })?;
            rewrapped.push(Rewrap {
                kid: key.kid,
                old: key.private_key_ciphertext,
                new,
            });
        }
        if store.rewrap_keys(&check, &rewrapped).await? {
            tracing::warn!(
                keys = rewrapped.len(),
                "re-encrypted every signing key under the new master key"
            );
            return Ok(rewrapped.len());
        }
    }
    Err(E::Busy)
}

/// Key generation off the async runtime: an RSA 3072 key takes a noticeable fraction of a second.
async fn generate(alg: SigningAlg, master: &Arc<MasterKey>) -> Result<NewSigningKey, KeyError> {
    let master = Arc::clone(master);
    tokio::task::spawn_blocking(move || keys::generate(alg, &master))
        .await
        .expect("key generation does not panic")
}

fn empty_snapshot() -> KeySnapshot {
    KeySnapshot {
        version: -1,
        signer: None,
        verifiers: HashMap::new(),
        jwks: Bytes::from_static(br#"{"keys":[]}"#),
        etag: String::new(),
        keys: Vec::new(),
        next: None,
        active_since: None,
        rebuild_at: None,
    }
}

fn build_snapshot(
    version: i64,
    keys: &[SigningKey],
    master: &MasterKey,
    policy: &KeyPolicy,
    now: OffsetDateTime,
) -> Result<KeySnapshot, KeyRingError> {
    // A retired key stays published while a token it signed may live.
    let retired_window = policy.access_token_ttl + CLOCK_SKEW;
    let mut snapshot = empty_snapshot();
    snapshot.version = version;
    let mut published = Vec::new();
    for key in keys {
        snapshot.keys.push(KeyInfo {
            kid: key.kid.clone(),
            alg: key.alg.as_str(),
            state: key.state.as_str(),
            created_at: key.created_at,
            activated_at: key.activated_at,
            retired_at: key.retired_at,
            revoked_at: key.revoked_at,
        });
        let publish = match key.state {
            KeyState::Revoked => false,
            KeyState::Next | KeyState::Active => true,
            KeyState::Retired => {
                let until = key.retired_at.unwrap_or(key.created_at) + retired_window;
                if until > now {
                    snapshot.rebuild_at =
                        Some(snapshot.rebuild_at.map_or(until, |at| at.min(until)));
                }
                until > now
            }
        };
        match key.state {
            KeyState::Active => {
                let signer = Signer::open(&key.kid, key.alg, &key.private_key_ciphertext, master)
                    .map_err(|e| match e {
                    KeyError::Decrypt => KeyRingError::WrongMasterKey,
                    other => KeyRingError::Key(other),
                })?;
                snapshot.signer = Some(Arc::new(signer));
                snapshot.active_since = key.activated_at.or(Some(key.created_at));
            }
            KeyState::Next => snapshot.next = Some((key.kid.clone(), key.created_at)),
            _ => {}
        }
        if publish {
            snapshot.verifiers.insert(
                key.kid.clone(),
                Verifier::from_public_jwk(&key.kid, key.alg, &key.public_jwk)?,
            );
            published.push(
                serde_json::from_str::<serde_json::Value>(&key.public_jwk)
                    .map_err(|e| KeyError::Jose(josekit::JoseError::InvalidJwkFormat(e.into())))?,
            );
        }
    }
    let jwks =
        serde_json::to_vec(&serde_json::json!({ "keys": published })).expect("JWKS serialises");
    snapshot.etag = format!(
        "\"{}\"",
        &keys::base64url(&openssl::sha::sha256(&jwks))[..27]
    );
    snapshot.jwks = jwks.into();
    Ok(snapshot)
}

/// A UUIDv7 (RFC 9562 §5.7): unique, and carrying the issue time in milliseconds, which cut-offs
/// compare against (the `iat` claim has only seconds).
pub(crate) fn jti(issued_at: time::OffsetDateTime) -> String {
    let nanos = issued_at.unix_timestamp_nanos();
    let (secs, subsec) = (
        nanos.div_euclid(1_000_000_000),
        nanos.rem_euclid(1_000_000_000),
    );
    let timestamp = uuid::Timestamp::from_unix(
        uuid::NoContext,
        u64::try_from(secs).unwrap_or(0),
        subsec as u32,
    );
    uuid::Uuid::new_v7(timestamp).to_string()
}

/// When an access token was issued, in unix milliseconds: from its UUIDv7 `jti`, or the end of its
/// `iat` second for a token minted before jtis carried the time (so a cut-off in that second
/// still covers it).
pub fn issued_at_millis(claims: &AccessTokenClaims) -> i64 {
    uuid::Uuid::parse_str(&claims.jti)
        .ok()
        .filter(|id| id.get_version() == Some(uuid::Version::SortRand))
        .and_then(|id| id.get_timestamp())
        .map(|ts| {
            let (secs, nanos) = ts.to_unix();
            secs as i64 * 1_000 + i64::from(nanos / 1_000_000)
        })
        .filter(|ms| ms.div_euclid(1_000) == claims.iat)
        .unwrap_or(claims.iat * 1_000 + 999)
}
