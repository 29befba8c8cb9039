//! The PostgreSQL store: the production backend, shared by several instances. Uses: config, model.

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, migrate::Migrator};

use super::{Backend, Store, StoreError};
use crate::config::DatabaseConfig;

static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    pub fn connect(options: &PgConnectOptions, config: &DatabaseConfig) -> Self {
        let options = options
            .clone()
            .application_name("tessera")
            .log_statements(log::LevelFilter::Off)
            .log_slow_statements(log::LevelFilter::Off, std::time::Duration::ZERO);
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .min_connections(0)
            .acquire_timeout(config.acquire_timeout)
            .idle_timeout(std::time::Duration::from_secs(600))
            .max_lifetime(std::time::Duration::from_secs(1800))
            // A connection killed by a failover or pg_terminate_backend is found dead here and
            // replaced, instead of failing the request that drew it.
            .test_before_acquire(true)
            .connect_lazy_with(options);
        Self { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = Migrator {
            migrations: MIGRATOR.migrations.clone(),
            // An instance of the previous release keeps starting while a newer one has already
            // added (backwards-compatible) migrations: a rolling upgrade.
            ignore_missing: true,
            // Several instances starting at once take turns (pg_advisory_lock).
            locking: true,
            no_tx: false,
        };
        migrator
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Migrate(e.to_string()))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("select 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
