//! The use cases, named in OAuth terms, and their errors (RFC 6749 §5.2 codes). Uses: store, crypto, clock, model.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::store::{ChangeListener, Store, StoreError, topic};

pub mod admin;
pub mod authorize;
pub mod browser_sessions;
pub mod clients;
pub mod keys;
pub mod passwords;
pub mod policy;
pub mod refresh;
pub mod revocations;
pub mod revoke;
pub mod roles;
pub mod rotations;
pub mod status_bits;
pub mod status_lists;
pub mod throttle;
pub mod token;
pub mod usage;

pub use clients::{AuthMethod, ClientCredentials, ClientRegistry};
pub use keys::KeyRing;
pub use policy::TokenPolicy;
pub use rotations::RotationBatching;

use passwords::PasswordHasher;
use throttle::Throttle;

/// How long a readiness probe waits for the database before calling it unavailable.
const READINESS_TIMEOUT: Duration = Duration::from_secs(2);

/// The actor of audit events for rotations nobody asked for.
const AUTOMATIC_ROTATION: &str = "automatic rotation";

/// How often each instance checks the change feed even without a notification: the bound on
/// how stale its keys and clients can be after a lost LISTEN connection.
pub const SYNC_INTERVAL: Duration = Duration::from_millis(500);

/// The most queued notifications one sync pass absorbs (a steady flood still gets passes).
const COALESCED_NOTIFICATIONS: usize = 10_000;

/// Errors in the vocabulary of the specifications; `http::ApiError` maps each to its response.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Missing, repeated or malformed parameter; the text names it (never its value).
    #[error("invalid_request: {0}")]
    InvalidRequest(Cow<'static, str>),
    #[error("invalid_client")]
    InvalidClient,
    /// The right secret, past its expiry (CONTRACT: client credential hygiene); said only once
    /// the secret was verified, so it reveals nothing to a guesser.
    #[error("invalid_client: client secret expired")]
    ClientSecretExpired,
    #[error("invalid_grant")]
    InvalidGrant,
    #[error("invalid_scope")]
    InvalidScope,
    /// RFC 8707 §2: the requested resource or audience is not allowed.
    #[error("invalid_target")]
    InvalidTarget,
    #[error("unauthorized_client")]
    UnauthorizedClient,
    #[error("unsupported_grant_type")]
    UnsupportedGrantType,
    /// Authenticated, but not allowed to do this (an admin or introspection endpoint).
    #[error("access_denied")]
    AccessDenied,
    #[error("not found: {0}")]
    NotFound(&'static str),
    #[error("conflict: {0}")]
    Conflict(Cow<'static, str>),
    /// A conflict that passes by itself: the same request succeeds after this many seconds.
    #[error("conflict: {text}")]
    TooSoon {
        text: Cow<'static, str>,
        retry_after_seconds: u64,
    },
    /// Too many failed attempts for this username or client.
    #[error("throttled")]
    Throttled { retry_after_seconds: u64 },
    /// The password-hashing queue is full: retry shortly.
    #[error("busy")]
    Busy,
    /// RFC 6749 §5.2 leaves server trouble to 5xx; we answer 503 so clients retry later.
    #[error("temporarily_unavailable")]
    TemporarilyUnavailable,
    /// Logged once by the edge and answered as a bare `server_error`.
    #[error(transparent)]
    Internal(InternalError),
}

/// What went wrong inside: the database, or a cryptographic operation on our own data. Neither
/// is the client's doing, and neither is described to it.
#[derive(Debug, thiserror::Error)]
pub enum InternalError {
    #[error(transparent)]
    Store(StoreError),
    /// Sealing or unsealing under the master key, or a signing key that does not load. The
    /// text names the operation and the crypto module's reason, never a key or a value.
    #[error("crypto failure: {0}")]
    Crypto(Cow<'static, str>),
}

impl Error {
    pub fn invalid_request(text: impl Into<Cow<'static, str>>) -> Self {
        Self::InvalidRequest(text.into())
    }

    /// A failed cryptographic operation on our own data.
    pub fn crypto(what: impl Into<Cow<'static, str>>) -> Self {
        Self::Internal(InternalError::Crypto(what.into()))
    }
}

impl From<StoreError> for Error {
    fn from(error: StoreError) -> Self {
        match error {
            e if e.is_unavailable() => Self::TemporarilyUnavailable,
            StoreError::LastAdmin => {
                Self::Conflict("the last enabled admin client cannot be disabled".into())
            }
            StoreError::UnknownRole(name) => {
                Self::invalid_request(format!("roles: unknown role {name:?}"))
            }
            StoreError::UnstorableText => {
                Self::invalid_request("a value contains a character that cannot be stored (NUL)")
            }
            e => Self::Internal(InternalError::Store(e)),
        }
    }
}

impl From<keys::KeyRingError> for Error {
    fn from(error: keys::KeyRingError) -> Self {
        use keys::KeyRingError as K;
        match error {
            K::Store(e) => e.into(),
            K::NoActiveKey => Self::TemporarilyUnavailable,
            K::UnknownKey => Self::NotFound("signing key"),
            K::Conflict => Self::Conflict("the key set changed meanwhile; retry".into()),
            e @ K::NextKeyTooNew {
                retry_after_seconds,
            } => Self::TooSoon {
                text: e.to_string().into(),
                retry_after_seconds,
            },
            // Logged once, by the edge, with the reason.
            e @ (K::WrongMasterKey | K::Key(_)) => Self::crypto(format!("signing key: {e}")),
        }
    }
}

/// The token issuer: every use case hangs off it.
pub struct Issuer {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    keys: Arc<KeyRing>,
    clients: ClientRegistry,
    revocations: revocations::RevocationState,
    throttle: Throttle,
    passwords: PasswordHasher,
    /// Seals retry-window successors; the signing keys are sealed under it too.
    master_key: Arc<crate::crypto::MasterKey>,
    policy: TokenPolicy,
    issuer: String,
    status_lists: status_lists::StatusLists,
    /// Passes of [`Issuer::sync`] so far (for operators and tests: a burst of notifications
    /// costs one pass, not one each).
    sync_passes: std::sync::atomic::AtomicU64,
    /// Refresh rotations, gathered into shared transactions on PostgreSQL.
    rotations: rotations::Rotations,
    /// Client use since the last flush.
    usage: usage::UsageRecorder,
    hygiene: usage::HygieneGauges,
}

impl Issuer {
    /// Loads the client registry; the key ring is started by the caller.
    pub async fn start(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        keys: Arc<KeyRing>,
        master_key: Arc<crate::crypto::MasterKey>,
        policy: TokenPolicy,
        passwords: PasswordHasher,
        issuer: String,
    ) -> Result<Self, Error> {
        let version = feed_version(&store.change_versions().await?, topic::CLIENTS);
        let clients = ClientRegistry::load(store.as_ref(), version).await?;
        let throttle = Throttle::new(Arc::clone(&store), Arc::clone(&clock));
        throttle.refresh().await?;
        let revocations = revocations::RevocationState::default();
        revocations.catch_up(store.as_ref(), clock.now()).await?;
        Ok(Self {
            rotations: rotations::Rotations::new(Arc::clone(&store), policy.refresh_batching),
            store,
            clock,
            keys,
            clients,
            revocations,
            throttle,
            passwords,
            master_key,
            status_lists: status_lists::StatusLists::new(policy.status_list_ttl),
            policy,
            issuer,
            sync_passes: Default::default(),
            usage: Default::default(),
            hygiene: Default::default(),
        })
    }

    pub fn keys(&self) -> &Arc<KeyRing> {
        &self.keys
    }

    /// The key of the browser pages' form tokens: one for every instance on this master key.
    pub fn form_key(&self) -> crate::crypto::form_tokens::FormKey {
        self.master_key.form_key()
    }

    /// (open, idle) database connections of this instance.
    pub fn pool_connections(&self) -> (u32, usize) {
        self.store.pool_connections()
    }

    pub fn revocations(&self) -> &revocations::RevocationState {
        &self.revocations
    }

    /// The `iss` of every token and the base of every metadata URL.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    /// Ready to serve: a signing key is loaded and the database answers within
    /// [`READINESS_TIMEOUT`].
    #[tracing::instrument(skip_all)]
    pub async fn readiness(&self) -> Result<(), Error> {
        if !self.keys.snapshot().has_signer() {
            tracing::warn!("not ready: no signing key is loaded");
            return Err(Error::TemporarilyUnavailable);
        }
        match tokio::time::timeout(READINESS_TIMEOUT, self.store.ping()).await {
            Ok(Ok(())) => self.ensure_fresh_revocations().await,
            // Whatever the cause, a database that cannot answer `select 1` is not ready.
            Ok(Err(error)) => {
                tracing::warn!(%error, "not ready: the database did not answer");
                Err(Error::TemporarilyUnavailable)
            }
            Err(_elapsed) => {
                tracing::warn!("not ready: the database did not answer in time");
                Err(Error::TemporarilyUnavailable)
            }
        }
    }

    /// Bounded staleness: past `revocation_max_staleness` without a successful revocation
    /// sync, this instance could vouch for tokens revoked elsewhere meanwhile, so it catches up
    /// now or answers `TemporarilyUnavailable` (CONTRACT: `TESSERA_REVOCATION_MAX_STALENESS`).
    pub(crate) async fn ensure_fresh_revocations(&self) -> Result<(), Error> {
        let limit = self.policy.revocation_max_staleness;
        if self.revocations.is_fresh(self.clock.now(), limit) {
            return Ok(());
        }
        let now = self.clock.now();
        let catch_up = self.revocations.catch_up(self.store.as_ref(), now);
        match tokio::time::timeout(READINESS_TIMEOUT, catch_up).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => {
                tracing::warn!(%error, "revocation state too stale to answer, and the database did not answer");
                Err(Error::TemporarilyUnavailable)
            }
            Err(_elapsed) => {
                tracing::warn!(
                    "revocation state too stale to answer, and the database did not answer in time"
                );
                Err(Error::TemporarilyUnavailable)
            }
        }
    }

    /// One pass of the change feed: reload what moved, refresh the throttle mirror, rotate
    /// the signing key when due.
    pub async fn sync(&self) -> Result<(), Error> {
        self.sync_passes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Revocations first, on their own: nothing else failing may hold them back.
        let now = self.clock.now();
        let revocations = self.revocations.catch_up(self.store.as_ref(), now).await;
        self.revocations.prune(now);
        let versions = self.store.change_versions().await?;
        let clients = feed_version(&versions, topic::CLIENTS);
        if clients != self.clients.version() {
            self.clients.reload(self.store.as_ref(), clients).await?;
        }
        self.keys
            .sync_to(feed_version(&versions, topic::KEYS))
            .await?;
        self.throttle.refresh().await?;
        if let Some(kid) = self.keys.rotate_if_due().await? {
            // Key changes are audited whoever makes them (CONTRACT: GET /admin/audit).
            self.record(self.admin_audit(
                "key_rotated",
                AUTOMATIC_ROTATION,
                None,
                None,
                serde_json::json!({"kid": kid, "automatic": true}),
                None,
            ))
            .await;
        }
        revocations?;
        Ok(())
    }

    /// After a committed change, this instance applies it at once (the others within the feed
    /// bound). The change stands whatever happens here, so a failure is logged, not returned.
    /// How many sync passes this instance has run.
    pub fn sync_passes(&self) -> u64 {
        self.sync_passes.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) async fn refresh_after_write(&self) {
        if let Err(error) = self.sync().await {
            tracing::warn!(%error, "could not refresh after a change; the change feed will catch up");
        }
    }

    /// Keeps this instance current until aborted. A NOTIFY from any instance triggers a pass
    /// at once; the periodic pass covers lost notifications and databases without them
    /// (SQLite, changed by the CLI). Bound: [`SYNC_INTERVAL`] plus one reload.
    pub async fn run_sync(self: Arc<Self>) {
        let mut listener: Option<Box<dyn ChangeListener>> = None;
        let mut notifications_supported = true;
        let mut ticker = tokio::time::interval(SYNC_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            if listener.is_none() && notifications_supported {
                match self.store.change_listener().await {
                    Ok(Some(l)) => listener = Some(l),
                    Ok(None) => notifications_supported = false,
                    Err(error) => tracing::debug!(%error, "change listener unavailable; polling"),
                }
            }
            tokio::select! {
                _ = ticker.tick() => {}
                received = next_notification(&mut listener) => {
                    if received.is_err() {
                        listener = None;
                    }
                    // One pass covers every change announced so far: a burst of NOTIFYs
                    // (one per revocation) costs one sync, not one each.
                    for _ in 0..COALESCED_NOTIFICATIONS {
                        match tokio::time::timeout(Duration::ZERO, next_notification(&mut listener))
                            .await
                        {
                            Ok(Ok(_)) => {}
                            Ok(Err(_)) => {
                                listener = None;
                                break;
                            }
                            Err(_nothing_pending) => break,
                        }
                    }
                }
            }
            if let Err(error) = self.sync().await {
                tracing::warn!(%error, "could not refresh from the change feed");
            }
        }
    }
}

async fn next_notification(
    listener: &mut Option<Box<dyn ChangeListener>>,
) -> Result<String, StoreError> {
    match listener {
        Some(listener) => listener.recv().await,
        None => std::future::pending().await,
    }
}

pub(crate) fn feed_version(versions: &[(String, i64)], topic: &str) -> i64 {
    versions
        .iter()
        .find(|(t, _)| t == topic)
        .map_or(0, |(_, v)| *v)
}
