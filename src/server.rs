//! Wiring: from a validated `Config` to a bound, serving Tessera. Uses: config, store, domain, http, crypto, clock.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;

use crate::clock::Clock;
use crate::config::{Config, MasterKeySource};
use crate::crypto::{MasterKey, MasterKeyError};
use crate::domain::keys::{KeyPolicy, KeyRingError};
use crate::domain::{Issuer, KeyRing};
use crate::http::{self, AppState};
use crate::store::{self, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("master key: {0}")]
    MasterKey(#[from] MasterKeyError),
    #[error(transparent)]
    Keys(#[from] KeyRingError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A Tessera bound to its address, ready to serve.
pub struct Server {
    listener: TcpListener,
    router: Router,
    store: Arc<dyn Store>,
    issuer: Arc<Issuer>,
    local_addr: SocketAddr,
    shutdown_grace: std::time::Duration,
}

impl Server {
    /// Opens (and by default migrates) the database, loads the master key and binds.
    pub async fn build(config: Config, clock: Arc<dyn Clock>) -> Result<Self, StartupError> {
        // Before the database is opened (and, on the embedded default, created): a lost key file
        // next to an existing database must stop start-up, not be silently replaced.
        let policy = key_policy(&config);
        let master_key = Arc::new(load_master_key(config.master_key)?);
        let store = store::connect(&config.database).await?;
        if config.migrate {
            store.migrate().await?;
            tracing::info!(
                backend = store.backend().as_str(),
                "database migrations are up to date"
            );
        }
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartupError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(|source| StartupError::Bind {
            addr: config.listen,
            source,
        })?;
        let issuer_url = config.issuer.clone().unwrap_or_else(|| {
            if local_addr.ip().is_unspecified() {
                tracing::warn!("TESSERA_ISSUER is not set and the listen address is unspecified: tokens will name an issuer clients cannot reach");
            }
            format!("http://{local_addr}")
        });
        let keys = KeyRing::start(
            Arc::clone(&store),
            Arc::clone(&clock),
            master_key,
            policy,
            issuer_url.clone(),
        )
        .await?;
        let issuer = Arc::new(Issuer::new(
            Arc::clone(&store),
            clock,
            Arc::new(keys),
            issuer_url,
        ));
        let router = http::router(
            AppState::new(Arc::clone(&issuer), config.jwks_max_age),
            config.request_timeout,
        );
        Ok(Self {
            listener,
            router,
            store,
            issuer,
            local_addr,
            shutdown_grace: config.shutdown_grace,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The issuer and its use cases, for embedders and tests.
    pub fn issuer(&self) -> &Arc<Issuer> {
        &self.issuer
    }

    /// Serves until `shutdown` resolves and in-flight requests have finished, then closes the
    /// pool. The key-sync task (change feed, automatic rotation) runs meanwhile.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let sync = tokio::spawn(Arc::clone(self.issuer.keys()).run_sync());
        let result = http::serve(self.listener, self.router, shutdown, self.shutdown_grace).await;
        sync.abort();
        self.store.close().await;
        result
    }
}

/// The signing-key rules the settings describe.
pub fn key_policy(config: &Config) -> KeyPolicy {
    KeyPolicy {
        alg: config.signing_alg,
        access_token_ttl: config.tokens.access_token_ttl,
        jwks_max_age: config.jwks_max_age,
        rotation_interval: config.key_rotation_interval,
    }
}

/// Resolves the configured master key; on the embedded default, creates the key file.
pub fn load_master_key(source: MasterKeySource) -> Result<MasterKey, MasterKeyError> {
    Ok(match source {
        MasterKeySource::Inline(key) | MasterKeySource::File(key, _) => key,
        MasterKeySource::Required => return Err(MasterKeyError::Missing),
        MasterKeySource::Embedded {
            key_file: path,
            database_file,
        } => {
            if !path.exists() && database_file.exists() {
                return Err(MasterKeyError::Lost {
                    key_file: path,
                    database_file,
                });
            }
            let (key, created) = MasterKey::read_or_create_file(&path)?;
            if created {
                tracing::warn!(path = %path.display(), "generated a new master key: back it up with the database, or the signing keys cannot be decrypted");
            }
            key
        }
    })
}
