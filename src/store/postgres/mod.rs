//! The PostgreSQL store: the production backend, shared by several instances. Writers that must not interleave across instances take advisory locks; the change feed is announced with NOTIFY. Uses: config, model.

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Postgres, Transaction};

use super::sql::helpers::shared_helpers;
use super::{CHANGE_CHANNEL, StoreError};
use crate::config::DatabaseConfig;

mod audit;
mod authorization;
mod clients;
mod feed;
mod infra;
mod keys;
mod revocations;
mod roles;
mod sessions;
mod status_lists;
mod throttle;
mod users;

/// Revocation writers take turns, so revocation ids become visible in order.
const REVOCATION_LOCK: i64 = 0x7465_7373_7265_766b; // "tessrevk"

/// A pooled connection idle this long is checked before use (see [`PgStore::connect`]).
const PING_AFTER_IDLE: std::time::Duration = std::time::Duration::from_secs(1);

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
            // replaced, instead of failing the request that drew it. Only one that sat idle:
            // a ping on every acquire doubled the round trips of a busy instance (each
            // statement paid an empty query first). A busy connection that dies fails its
            // request (503, nothing written) and is dropped.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PING_AFTER_IDLE {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect_lazy_with(options);
        Self { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A transaction for a write; row locks and advisory locks order the writers.
    async fn begin_write(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        Ok(self.pool.begin().await?)
    }

    /// Instances load revocations incrementally by id. An identity value is taken at insert but
    /// becomes visible at commit, so two concurrent revocations could appear out of order and
    /// the lower id be skipped; revocation writers therefore take turns until they commit.
    async fn lock_revocations(tx: &mut Transaction<'_, Postgres>) -> Result<(), StoreError> {
        sqlx::query("select pg_advisory_xact_lock($1)")
            .bind(REVOCATION_LOCK)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Tells the other instances at commit.
    async fn notify(tx: &mut Transaction<'_, Postgres>, topic: &str) -> Result<(), StoreError> {
        sqlx::query("select pg_notify($1, $2)")
            .bind(CHANGE_CHANNEL)
            .bind(topic)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

shared_helpers!(PgStore, Postgres);
