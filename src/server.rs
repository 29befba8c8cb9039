//! Wiring and serving: from a validated `Config` to a bound Tessera, `serve` with its graceful drain, and the signals that stop it. Uses: config, store, domain, http, crypto, clock.

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;

use crate::clock::Clock;
use secrecy::ExposeSecret;

use crate::config::{Config, DatabaseUrl, MasterKeySource};
use crate::crypto::secrets::ClientSecret;
use crate::crypto::{MasterKey, MasterKeyError};
use crate::domain::keys::{KeyPolicy, KeyRingError};
use crate::domain::passwords::PasswordHasher;
use crate::domain::{Issuer, KeyRing};
use crate::http::{self, AppState};
use crate::store::{self, Store, StoreError};

/// How long a login waits for a turn at argon2id before 503.
const PASSWORD_QUEUE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("database")]
    Store(#[from] StoreError),
    #[error("master key")]
    MasterKey(#[from] MasterKeyError),
    #[error(transparent)]
    Keys(#[from] KeyRingError),
    #[error("start-up")]
    Domain(#[from] crate::domain::Error),
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
    generated_admin: Option<(String, ClientSecret)>,
    local_addr: SocketAddr,
    shutdown_grace: std::time::Duration,
}

impl Server {
    /// Opens (and by default migrates) the database, loads the master key and binds.
    pub async fn build(mut config: Config, clock: Arc<dyn Clock>) -> Result<Self, StartupError> {
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
        if config.issuer.is_none() && local_addr.ip().is_unspecified() {
            tracing::warn!(
                "TESSERA_ISSUER is not set and the listen address is unspecified: tokens will name an issuer clients cannot reach"
            );
        }
        // Without a configured issuer, the address actually bound (port 0 included).
        config
            .issuer
            .get_or_insert_with(|| format!("http://{local_addr}"));
        let (issuer, store) = open(&mut config, clock).await?;
        let configured = config
            .bootstrap_admin
            .as_ref()
            .map(|admin| (admin.id.as_str(), admin.secret.expose_secret()));
        let embedded = matches!(config.database.url, DatabaseUrl::Sqlite { .. });
        let generated_admin = issuer.ensure_admin(configured, embedded).await?;
        issuer.warn_about_admin_secrets();
        let router = http::router(
            AppState::new(Arc::clone(&issuer), config.jwks_max_age)
                .with_trusted_proxies(http::source::TrustedProxies::new(
                    config.trusted_proxies.clone(),
                ))
                .with_form_key(issuer.form_key()),
            config.request_timeout,
        );
        Ok(Self {
            listener,
            router,
            store,
            issuer,
            generated_admin,
            local_addr,
            shutdown_grace: config.shutdown_grace,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The admin client generated at this first start of the embedded default, if any: its
    /// secret is shown once, by the caller, and never again.
    pub fn take_generated_admin(&mut self) -> Option<(String, ClientSecret)> {
        self.generated_admin.take()
    }

    /// The issuer and its use cases, for embedders and tests.
    pub fn issuer(&self) -> &Arc<Issuer> {
        &self.issuer
    }

    /// Serves until `shutdown` resolves and in-flight requests have finished, writes the client
    /// use recorded since the last flush, then closes the pool. The key-sync task (change feed,
    /// automatic rotation), housekeeping, the usage flush and the metrics upkeep run meanwhile.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let sync = tokio::spawn(Arc::clone(&self.issuer).run_sync());
        let housekeeping = tokio::spawn(Arc::clone(&self.issuer).run_housekeeping());
        let usage = tokio::spawn(Arc::clone(&self.issuer).run_usage());
        let metrics_upkeep = tokio::spawn(crate::metrics::run_upkeep());
        let status_lists = self
            .issuer
            .status_lists_enabled()
            .then(|| tokio::spawn(Arc::clone(&self.issuer).run_status_lists()));
        let result = serve(self.listener, self.router, shutdown, self.shutdown_grace).await;
        sync.abort();
        housekeeping.abort();
        usage.abort();
        metrics_upkeep.abort();
        if let Some(task) = status_lists {
            task.abort();
        }
        // After the drain, so the last requests' use is in it: at most a minute is lost only
        // when an instance dies without a drain.
        if let Err(error) = self.issuer.flush_usage().await {
            tracing::warn!(%error, "recording client use at shutdown failed");
        }
        self.store.close().await;
        result
    }
}

/// Opens (and by default migrates) the database, loads the master key and the keys, and starts
/// the issuer, without listening: what `serve` and the admin commands share. The master key is
/// taken out of `config`.
pub async fn open(
    config: &mut Config,
    clock: Arc<dyn Clock>,
) -> Result<(Arc<Issuer>, Arc<dyn Store>), StartupError> {
    // Before the database is opened (and, on the embedded default, created): a lost key file
    // next to an existing database must stop start-up, not be silently replaced.
    let policy = key_policy(config);
    let master_key = std::mem::replace(&mut config.master_key, MasterKeySource::Required);
    let master_key =
        Arc::new(load_master_key(master_key)?.with_previous(config.master_key_previous.take()));
    let store = store::connect(&config.database).await?;
    if config.migrate {
        store.migrate().await?;
        tracing::info!(
            backend = store.backend().as_str(),
            "database migrations are up to date"
        );
    }
    let issuer_url = config
        .issuer
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.listen));
    let keys = KeyRing::start(
        Arc::clone(&store),
        Arc::clone(&clock),
        Arc::clone(&master_key),
        policy,
        issuer_url.clone(),
    )
    .await?;
    let passwords = PasswordHasher::new(
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        PASSWORD_QUEUE_WAIT,
    );
    let issuer = Issuer::start(
        Arc::clone(&store),
        clock,
        Arc::new(keys),
        master_key,
        config.tokens,
        passwords,
        issuer_url,
    )
    .await?;
    Ok((Arc::new(issuer), store))
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

/// Serves until `shutdown` resolves, then stops accepting, lets in-flight requests finish and
/// returns; connections still busy after `grace` are closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let (draining_tx, mut draining) = tokio::sync::watch::channel(false);
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: draining in-flight requests");
        let _ = draining_tx.send(true);
    };
    // Answers leave at once instead of waiting for the client's acknowledgement of an earlier
    // segment (Nagle's algorithm): a keep-alive connection carries one small answer at a time.
    let listener = axum::serve::ListenerExt::tap_io(listener, |stream| {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "TCP_NODELAY not set");
        }
    });
    let server = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(signal)
    .into_future();
    let deadline = async move {
        if draining.wait_for(|draining| *draining).await.is_ok() {
            tokio::time::sleep(grace).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        result = server => result,
        () = deadline => {
            tracing::warn!(grace_seconds = grace.as_secs(), "requests still running after the shutdown grace; closing them");
            Ok(())
        }
    }
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed now, before the first poll, so a
/// signal that arrives during start-up is not lost.
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM received"),
            _ = interrupt.recv() => tracing::info!("SIGINT received"),
        }
    })
}
