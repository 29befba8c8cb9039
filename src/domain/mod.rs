//! The use cases, named in OAuth terms, and their errors (RFC 6749 §5.2 codes). Uses: store, crypto, clock, model.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::store::{Store, StoreError};

pub mod keys;

pub use keys::KeyRing;

/// How long a readiness probe waits for the database before calling it unavailable.
const READINESS_TIMEOUT: Duration = Duration::from_secs(2);

/// Errors in the vocabulary of the specifications; `http::ApiError` maps each to its response.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// RFC 6749 §5.2 leaves server trouble to 5xx; we answer 503 so clients retry later.
    #[error("temporarily_unavailable")]
    TemporarilyUnavailable,
    #[error(transparent)]
    Internal(StoreError),
}

impl From<StoreError> for Error {
    fn from(error: StoreError) -> Self {
        if error.is_unavailable() {
            Self::TemporarilyUnavailable
        } else {
            Self::Internal(error)
        }
    }
}

/// The token issuer: every use case hangs off it.
pub struct Issuer {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    keys: Arc<KeyRing>,
    issuer: String,
}

impl Issuer {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        keys: Arc<KeyRing>,
        issuer: String,
    ) -> Self {
        Self {
            store,
            clock,
            keys,
            issuer,
        }
    }

    pub fn keys(&self) -> &Arc<KeyRing> {
        &self.keys
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
            Ok(Ok(())) => Ok(()),
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
}
