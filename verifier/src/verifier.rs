//! The `Verifier`: Tessera's metadata, JWKS and status lists fetched over HTTP and cached, every
//! token checked with the crate's rules.

use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use crate::jws::{self, ACCESS_TOKEN_TYP, PublicKey, STATUS_LIST_TYP};
use crate::status::{DEFAULT_MAX_LIST_BYTES, ListPayload, StatusList};
use crate::{Claims, Rejection, Rules};

/// An unknown `kid` makes the verifier refetch the JWKS at most this often, so a flood of
/// forged `kid`s cannot hammer the issuer.
pub const UNKNOWN_KID_REFETCH_INTERVAL: Duration = Duration::from_secs(10);
/// Bounds of a status list's `ttl` (Token Status List §5.1): shorter is raised, longer lowered.
pub const STATUS_TTL_BOUNDS: (Duration, Duration) =
    (Duration::from_secs(10), Duration::from_secs(3600));
/// The `ttl` of a status list that names none.
pub const DEFAULT_STATUS_TTL: Duration = Duration::from_secs(60);
/// The JWKS max-age when the answer has no `Cache-Control: max-age`, and the longest honoured.
pub const DEFAULT_JWKS_MAX_AGE: Duration = Duration::from_secs(300);
pub const MAX_JWKS_MAX_AGE: Duration = Duration::from_secs(86_400);
/// After a failed fetch (issuer down), the same document is not asked for again sooner.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(2);

/// The time the verifier reads; tests give it a clock they move.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> SystemTime;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[expect(
        clippy::disallowed_methods,
        reason = "the one place the verifier reads the wall clock"
    )]
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// Why a verifier could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("the issuer is not an absolute http(s) URL")]
    BadIssuer,
    #[error("the issuer is https: enable tessera-verifier's `rustls` feature")]
    NoTls,
    #[error("the HTTP client could not be set up: {0}")]
    Client(#[from] reqwest::Error),
}

/// Settings of a [`Verifier`]; [`Verifier::builder`] starts from the defaults.
pub struct VerifierBuilder {
    issuer: String,
    audience: String,
    leeway: Duration,
    timeout: Duration,
    max_response_bytes: usize,
    max_list_bytes: usize,
    staleness: Duration,
    clock: Arc<dyn Clock>,
}

impl VerifierBuilder {
    /// How far in the future `iat`/`nbf` may be (default 60 s, at most [`crate::claims::MAX_LEEWAY`]).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The whole of one request to the issuer, connection included (default 5 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The largest metadata, JWKS or status list answer read (default 1 MiB).
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = bytes;
        self
    }

    /// The largest inflated status list (default 1 MiB).
    pub fn max_list_bytes(mut self, bytes: usize) -> Self {
        self.max_list_bytes = bytes;
        self
    }

    /// How long past its expiry a cached JWKS or status list still serves while the issuer
    /// cannot be reached; after that, tokens are refused (default 5 min).
    pub fn staleness(mut self, staleness: Duration) -> Self {
        self.staleness = staleness;
        self
    }

    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    pub fn build(self) -> Result<Verifier, BuildError> {
        let issuer = url::Url::parse(&self.issuer).map_err(|_| BuildError::BadIssuer)?;
        if !matches!(issuer.scheme(), "http" | "https") || issuer.cannot_be_a_base() {
            return Err(BuildError::BadIssuer);
        }
        if issuer.scheme() == "https" && !cfg!(feature = "rustls") {
            return Err(BuildError::NoTls);
        }
        let client = reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(self.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let rules = Rules::new(self.issuer.clone())
            .audience(self.audience)
            .leeway(self.leeway);
        Ok(Verifier {
            inner: Arc::new(Inner {
                rules,
                origin: issuer.origin(),
                client,
                max_response_bytes: self.max_response_bytes,
                max_list_bytes: self.max_list_bytes,
                staleness: self.staleness,
                clock: self.clock,
                metadata: tokio::sync::Mutex::new(None),
                keys: RwLock::new(Arc::new(KeyCache::default())),
                keys_refresh: tokio::sync::Mutex::new(()),
                lists: RwLock::new(HashMap::new()),
                list_refresh: tokio::sync::Mutex::new(()),
                unknown_kid_fetch: StdMutex::new(None),
            }),
        })
    }
}

/// Verifies Tessera access tokens for one audience. Cheap to clone (one shared cache).
///
/// Built from the issuer URL and the expected audience; on first use it reads the issuer's
/// RFC 8414 metadata for `jwks_uri` (and `status_list_aggregation_endpoint`), then keeps the
/// JWKS for its `Cache-Control: max-age` and each status list for its `ttl`.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    rules: Rules,
    origin: url::Origin,
    client: reqwest::Client,
    max_response_bytes: usize,
    max_list_bytes: usize,
    staleness: Duration,
    clock: Arc<dyn Clock>,
    metadata: tokio::sync::Mutex<Option<Arc<Metadata>>>,
    keys: RwLock<Arc<KeyCache>>,
    /// One JWKS fetch at a time; the others wait and use its result.
    keys_refresh: tokio::sync::Mutex<()>,
    lists: RwLock<HashMap<String, Arc<CachedList>>>,
    list_refresh: tokio::sync::Mutex<()>,
    unknown_kid_fetch: StdMutex<Option<SystemTime>>,
}

/// What the verifier reads from the issuer's metadata (RFC 8414 §2).
#[derive(Debug, Clone, Deserialize)]
struct Metadata {
    issuer: String,
    jwks_uri: String,
    #[serde(default)]
    status_list_aggregation_endpoint: Option<String>,
}

#[derive(Default)]
struct KeyCache {
    keys: Arc<HashMap<String, PublicKey>>,
    /// When the JWKS was fetched, `None` before the first fetch.
    fetched_at: Option<SystemTime>,
    max_age: Duration,
    /// The last failed fetch, so a down issuer is not asked on every request.
    failed_at: Option<SystemTime>,
}

struct CachedList {
    list: Option<Arc<StatusList>>,
    fetched_at: Option<SystemTime>,
    ttl: Duration,
    failed_at: Option<SystemTime>,
}

/// Why a fetch failed; logged, never shown to a client.
#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("request failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("answer status {0}")]
    Status(u16),
    #[error("answer larger than the bound")]
    TooLarge,
    #[error("answer malformed")]
    Malformed,
    #[error("metadata names another issuer")]
    IssuerMismatch,
    #[error("status list: {0}")]
    List(#[from] crate::status::ListError),
    #[error("status list token refused: {0}")]
    ListToken(Rejection),
    #[error("URL not on the issuer's origin")]
    ForeignOrigin,
}

impl Verifier {
    /// Starts the settings of a verifier of `issuer`'s tokens for `audience`.
    pub fn builder(issuer: impl Into<String>, audience: impl Into<String>) -> VerifierBuilder {
        VerifierBuilder {
            issuer: issuer.into(),
            audience: audience.into(),
            leeway: crate::claims::DEFAULT_LEEWAY,
            timeout: Duration::from_secs(5),
            max_response_bytes: 1 << 20,
            max_list_bytes: DEFAULT_MAX_LIST_BYTES,
            staleness: Duration::from_secs(300),
            clock: Arc::new(SystemClock),
        }
    }

    /// A verifier with the default settings.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Result<Self, BuildError> {
        Self::builder(issuer, audience).build()
    }

    pub fn rules(&self) -> &Rules {
        &self.inner.rules
    }

    /// The issuer's status list aggregation endpoint, once the metadata has been read.
    pub async fn status_list_aggregation_endpoint(&self) -> Option<String> {
        let metadata = self.inner.metadata.lock().await;
        metadata
            .as_ref()
            .and_then(|m| m.status_list_aggregation_endpoint.clone())
    }

    /// Reads the metadata and the JWKS now, so the first request does not wait for them.
    pub async fn warm_up(&self) -> Result<(), Rejection> {
        self.inner.refresh_keys().await;
        self.inner
            .usable_keys()
            .map(|_| ())
            .ok_or(Rejection::KeysUnavailable)
    }

    /// Verifies an access token: signature with the JWKS key its `kid` names (the key's `alg`),
    /// `typ`, `iss`, `aud`, `exp`/`nbf`/`iat`, then its status list entry if it has one.
    pub async fn verify(&self, token: &str) -> Result<Claims, Rejection> {
        let inner = &self.inner;
        let now = inner.clock.now();
        if inner.keys_need_refresh(now) {
            inner.refresh_keys().await;
        }
        let keys = inner.usable_keys().ok_or(Rejection::KeysUnavailable)?;
        let unix = unix(now);
        let claims = match inner
            .rules
            .verify::<Claims, _>(token, |kid| keys.keys.get(kid), unix)
        {
            Err(Rejection::UnknownKey) => {
                let kid = jws::kid_of(token, ACCESS_TOKEN_TYP)?;
                let keys = inner.keys_after_unknown_kid(&kid).await?;
                inner
                    .rules
                    .verify::<Claims, _>(token, |kid| keys.keys.get(kid), unix)?
            }
            other => other?,
        };
        if let Some(status) = &claims.status {
            inner
                .check_status(&status.status_list.uri, status.status_list.idx)
                .await?;
        }
        Ok(claims)
    }
}

fn unix(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// How long ago `then` was (zero if the clock went back).
fn age(now: SystemTime, then: SystemTime) -> Duration {
    now.duration_since(then).unwrap_or_default()
}

impl Inner {
    fn keys(&self) -> Arc<KeyCache> {
        Arc::clone(&self.keys.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Past max-age, and no failed attempt in the last [`RETRY_INTERVAL`].
    fn keys_need_refresh(&self, now: SystemTime) -> bool {
        let keys = self.keys();
        let expired = keys
            .fetched_at
            .is_none_or(|at| age(now, at) >= keys.max_age);
        expired
            && keys
                .failed_at
                .is_none_or(|at| age(now, at) >= RETRY_INTERVAL)
    }

    /// The cached keys, unless they are older than max-age plus the staleness bound.
    fn usable_keys(&self) -> Option<Arc<KeyCache>> {
        let keys = self.keys();
        let at = keys.fetched_at?;
        (age(self.clock.now(), at) < keys.max_age + self.staleness).then_some(keys)
    }

    /// An unknown `kid`: refetch the JWKS unless one was fetched for that reason in the last
    /// [`UNKNOWN_KID_REFETCH_INTERVAL`], then look again.
    async fn keys_after_unknown_kid(&self, kid: &str) -> Result<Arc<KeyCache>, Rejection> {
        let now = self.clock.now();
        let allowed = {
            let mut last = self
                .unknown_kid_fetch
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let allowed = last.is_none_or(|at| age(now, at) >= UNKNOWN_KID_REFETCH_INTERVAL);
            if allowed {
                *last = Some(now);
            }
            allowed
        };
        if allowed {
            self.refresh_keys().await;
        }
        let keys = self.usable_keys().ok_or(Rejection::KeysUnavailable)?;
        if keys.keys.contains_key(kid) {
            Ok(keys)
        } else {
            Err(Rejection::UnknownKey)
        }
    }

    /// Fetches the JWKS, one fetch at a time: a caller that waited for another's fetch uses
    /// its result.
    async fn refresh_keys(&self) {
        let before = self.keys();
        let _one_at_a_time = self.keys_refresh.lock().await;
        let current = self.keys();
        if !Arc::ptr_eq(&before, &current) {
            return;
        }
        let now = self.clock.now();
        let fetched = match self.metadata().await {
            Ok(metadata) => self.fetch_jwks(&metadata.jwks_uri).await,
            Err(e) => Err(e),
        };
        let next = match fetched {
            Ok((keys, max_age)) => KeyCache {
                keys: Arc::new(keys),
                fetched_at: Some(now),
                max_age,
                failed_at: None,
            },
            Err(error) => {
                tracing::warn!(%error, "tessera-verifier: JWKS fetch failed; cached keys kept");
                metrics::counter!("tessera_verifier_fetch_failures_total", "document" => "jwks")
                    .increment(1);
                KeyCache {
                    keys: Arc::clone(&current.keys),
                    fetched_at: current.fetched_at,
                    max_age: current.max_age,
                    failed_at: Some(now),
                }
            }
        };
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
    }

    async fn metadata(&self) -> Result<Arc<Metadata>, FetchError> {
        let mut cached = self.metadata.lock().await;
        if let Some(metadata) = cached.as_ref() {
            return Ok(Arc::clone(metadata));
        }
        let issuer = self.rules.issuer().trim_end_matches('/');
        let url = format!("{issuer}/.well-known/oauth-authorization-server");
        let (body, _) = self.get(&url, "application/json").await?;
        let metadata: Metadata =
            serde_json::from_slice(&body).map_err(|_| FetchError::Malformed)?;
        // RFC 8414 §3.3: the metadata must name the issuer it was asked of.
        if metadata.issuer != self.rules.issuer() {
            return Err(FetchError::IssuerMismatch);
        }
        let metadata = Arc::new(metadata);
        *cached = Some(Arc::clone(&metadata));
        Ok(metadata)
    }

    /// The JWKS's usable keys and how long to keep them. A member this crate cannot use (no
    /// `alg`, an encryption key, another algorithm) is skipped.
    async fn fetch_jwks(
        &self,
        url: &str,
    ) -> Result<(HashMap<String, PublicKey>, Duration), FetchError> {
        let (body, max_age) = self.get(url, "application/json").await?;
        #[derive(Deserialize)]
        struct Jwks {
            keys: Vec<serde_json::Value>,
        }
        let jwks: Jwks = serde_json::from_slice(&body).map_err(|_| FetchError::Malformed)?;
        let keys = jwks
            .keys
            .iter()
            .filter_map(|jwk| PublicKey::from_jwk_value(jwk).ok())
            .filter(|key| !key.kid().is_empty())
            .map(|key| (key.kid().to_owned(), key))
            .collect();
        let max_age = max_age
            .unwrap_or(DEFAULT_JWKS_MAX_AGE)
            .min(MAX_JWKS_MAX_AGE);
        Ok((keys, max_age))
    }

    /// GET `url`, at most `max_response_bytes` read, within the timeout, no redirect followed.
    /// Returns the body and the `Cache-Control` max-age.
    async fn get(
        &self,
        url: &str,
        accept: &str,
    ) -> Result<(Vec<u8>, Option<Duration>), FetchError> {
        let mut response = self
            .client
            .get(url)
            .header(reqwest::header::ACCEPT, accept)
            .send()
            .await?;
        if !response.status().is_success() {
            return Err(FetchError::Status(response.status().as_u16()));
        }
        if response
            .content_length()
            .is_some_and(|len| len > self.max_response_bytes as u64)
        {
            return Err(FetchError::TooLarge);
        }
        let max_age = response
            .headers()
            .get_all(reqwest::header::CACHE_CONTROL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .find_map(|directive| {
                let (name, value) = directive.trim().split_once('=')?;
                name.eq_ignore_ascii_case("max-age")
                    .then(|| value.trim().trim_matches('"').parse().ok())?
            })
            .map(Duration::from_secs);
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > self.max_response_bytes {
                return Err(FetchError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok((body, max_age))
    }

    /// The status of token `idx` in the list at `uri`: 0 passes, anything else is refused.
    async fn check_status(&self, uri: &str, idx: u64) -> Result<(), Rejection> {
        let cached = self.list(uri).await?;
        let list = cached.list.as_ref().ok_or(Rejection::StatusUnavailable)?;
        match list.get(idx) {
            None => Err(Rejection::StatusOutOfRange),
            Some(0) => Ok(()),
            Some(_) => Err(Rejection::Revoked),
        }
    }

    fn cached_list(&self, uri: &str) -> Option<Arc<CachedList>> {
        let lists = self.lists.read().unwrap_or_else(|p| p.into_inner());
        lists.get(uri).cloned()
    }

    /// The list at `uri`, fetched again past its `ttl`; a cached one serves up to the staleness
    /// bound past its `ttl` while the issuer cannot give a new one.
    async fn list(&self, uri: &str) -> Result<Arc<CachedList>, Rejection> {
        let now = self.clock.now();
        let cached = self.cached_list(uri);
        let fresh = |c: &CachedList| c.fetched_at.is_some_and(|at| age(now, at) < c.ttl);
        let retry_later =
            |c: &CachedList| c.failed_at.is_some_and(|at| age(now, at) < RETRY_INTERVAL);
        let cached = match cached {
            Some(c) if fresh(&c) || retry_later(&c) => c,
            _ => self.refresh_list(uri, now).await,
        };
        let usable = cached.list.is_some()
            && cached
                .fetched_at
                .is_some_and(|at| age(now, at) < cached.ttl + self.staleness);
        if usable {
            Ok(cached)
        } else {
            Err(Rejection::StatusUnavailable)
        }
    }

    async fn refresh_list(&self, uri: &str, now: SystemTime) -> Arc<CachedList> {
        let _one_at_a_time = self.list_refresh.lock().await;
        let previous = self.cached_list(uri);
        if let Some(c) = &previous
            && (c.fetched_at.is_some_and(|at| at >= now) || c.failed_at.is_some_and(|at| at >= now))
        {
            return Arc::clone(c);
        }
        let next = match self.fetch_list(uri, now).await {
            Ok((list, ttl)) => CachedList {
                list: Some(Arc::new(list)),
                fetched_at: Some(now),
                ttl,
                failed_at: None,
            },
            Err(error) => {
                tracing::warn!(%error, uri, "tessera-verifier: status list fetch failed");
                metrics::counter!("tessera_verifier_fetch_failures_total", "document" => "status_list")
                    .increment(1);
                match previous.as_deref() {
                    Some(c) => CachedList {
                        list: c.list.clone(),
                        fetched_at: c.fetched_at,
                        ttl: c.ttl,
                        failed_at: Some(now),
                    },
                    None => CachedList {
                        list: None,
                        fetched_at: None,
                        ttl: STATUS_TTL_BOUNDS.0,
                        failed_at: Some(now),
                    },
                }
            }
        };
        let next = Arc::new(next);
        self.lists
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(uri.to_owned(), Arc::clone(&next));
        next
    }

    /// Fetches and checks a status list token: on the issuer's origin, `typ` `statuslist+jwt`,
    /// signed by a JWKS key under that key's alg, `sub` the URI asked, not expired.
    async fn fetch_list(
        &self,
        uri: &str,
        now: SystemTime,
    ) -> Result<(StatusList, Duration), FetchError> {
        let url = url::Url::parse(uri).map_err(|_| FetchError::ForeignOrigin)?;
        if url.origin() != self.origin {
            return Err(FetchError::ForeignOrigin);
        }
        let (body, _) = self.get(uri, "application/statuslist+jwt").await?;
        let token = std::str::from_utf8(&body)
            .map_err(|_| FetchError::Malformed)?
            .trim();
        let keys = self
            .usable_keys()
            .ok_or(FetchError::ListToken(Rejection::KeysUnavailable))?;
        let payload = match jws::verify(token, STATUS_LIST_TYP, |kid| keys.keys.get(kid)) {
            Err(Rejection::UnknownKey) => {
                let kid = jws::kid_of(token, STATUS_LIST_TYP).map_err(FetchError::ListToken)?;
                let keys = self
                    .keys_after_unknown_kid(&kid)
                    .await
                    .map_err(FetchError::ListToken)?;
                jws::verify(token, STATUS_LIST_TYP, |kid| keys.keys.get(kid))
            }
            other => other,
        }
        .map_err(FetchError::ListToken)?;
        let payload: ListPayload =
            serde_json::from_slice(&payload).map_err(|_| FetchError::Malformed)?;
        if payload.sub != uri {
            return Err(FetchError::ListToken(Rejection::MalformedClaims));
        }
        if payload.exp.is_some_and(|exp| unix(now) >= exp) {
            return Err(FetchError::ListToken(Rejection::Expired));
        }
        let list = StatusList::decode(
            payload.status_list.bits,
            &payload.status_list.lst,
            self.max_list_bytes,
        )?;
        let ttl = payload
            .ttl
            .map_or(DEFAULT_STATUS_TTL, Duration::from_secs)
            .clamp(STATUS_TTL_BOUNDS.0, STATUS_TTL_BOUNDS.1);
        Ok((list, ttl))
    }
}

#[cfg(test)]
#[path = "verifier_tests.rs"]
mod tests;
