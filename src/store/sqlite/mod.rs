//! The SQLite store: the embedded default for a single instance. Every write transaction begins IMMEDIATE, taking the database's write lock up front, so writers queue instead of deadlocking on a lock upgrade, and need no other lock. Uses: config, crypto, model.

use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Sqlite, Transaction};

use super::StoreError;
use super::sql::helpers::shared_helpers;
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

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    pub async fn connect(
        options: &SqliteConnectOptions,
        path: &Path,
        config: &DatabaseConfig,
    ) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::crypto::create_private_dir(dir).map_err(|_| StoreError::Unavailable {
                kind: "cannot create the database directory",
            })?;
        }
        let options = options
            .clone()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // Revocations and rotations must survive a power cut, not only a process crash.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5))
            .log_statements(log::LevelFilter::Off)
            .log_slow_statements(log::LevelFilter::Off, Duration::ZERO);
        let pool = SqlitePoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(config.acquire_timeout)
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// IMMEDIATE takes the write lock up front: no deadlock upgrading a read lock.
    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        Ok(self.pool.begin_with("begin immediate").await?)
    }

    /// The write lock already orders revocation ids.
    async fn lock_revocations(_tx: &mut Transaction<'_, Sqlite>) -> Result<(), StoreError> {
        Ok(())
    }

    /// A single instance: nobody else to tell.
    async fn notify(_tx: &mut Transaction<'_, Sqlite>, _topic: &str) -> Result<(), StoreError> {
        Ok(())
    }
}

shared_helpers!(SqliteStore, Sqlite);
