//! Storage: one interface with a PostgreSQL (production, shared by several instances) and a SQLite (embedded, single instance) implementation. All SQL lives in `postgres.rs` and `sqlite.rs`. Uses: config, model.

use std::sync::Arc;

use async_trait::async_trait;

use crate::config::{DatabaseConfig, DatabaseUrl};

mod postgres;
mod sqlite;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Sqlite => "sqlite",
        }
    }
}

/// What every layer above needs from the database. Multi-statement invariants are single
/// methods with their transaction inside, so no caller can leave half a change behind.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    fn backend(&self) -> Backend;

    /// Applies pending migrations. Safe to run from several instances at once: PostgreSQL
    /// serialises them with an advisory lock, and applied versions are skipped.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// One round trip, for readiness.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Closes the pool, waiting for checked-out connections to return.
    async fn close(&self);
}

/// Storage failures. `Display` never includes SQL text or values: only the kind and, for
/// database errors, the SQLSTATE or SQLite code.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database does not answer (down, restarting, pool exhausted, connection lost).
    /// Callers map this to 503 `temporarily_unavailable`; nothing was changed.
    #[error("database unavailable ({kind})")]
    Unavailable { kind: &'static str },
    #[error("database error (code {code})")]
    Database { code: String },
    #[error("database error ({kind})")]
    Other { kind: &'static str },
    #[error("migration failed: {0}")]
    Migrate(String),
}

impl StoreError {
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        use sqlx::Error as E;
        match &error {
            E::PoolTimedOut => Self::Unavailable {
                kind: "pool timed out",
            },
            E::PoolClosed => Self::Unavailable {
                kind: "pool closed",
            },
            E::Io(_) => Self::Unavailable { kind: "i/o" },
            E::Tls(_) => Self::Unavailable { kind: "tls" },
            E::WorkerCrashed => Self::Unavailable {
                kind: "worker crashed",
            },
            E::Protocol(_) => Self::Unavailable { kind: "protocol" },
            E::Database(db) => {
                let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
                if is_unavailable_code(&code) {
                    Self::Unavailable {
                        kind: "server refused",
                    }
                } else {
                    Self::Database { code }
                }
            }
            E::RowNotFound => Self::Other {
                kind: "row not found",
            },
            E::ColumnDecode { .. } | E::Decode(_) | E::ColumnNotFound(_) => {
                Self::Other { kind: "decode" }
            }
            _ => Self::Other { kind: "driver" },
        }
    }
}

/// PostgreSQL: connection exceptions (class 08), shutdown and start-up (57P01-57P03), too many
/// connections (53300), and what a new connection meets while the database is being restored or
/// reconfigured: refused credentials (class 28), a missing database (3D000), a database not
/// accepting connections (55000). SQLite: busy (5) and locked (6).
fn is_unavailable_code(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("28")
        || matches!(
            code,
            "57P01" | "57P02" | "57P03" | "53300" | "3D000" | "55000" | "5" | "6"
        )
}

/// Opens the configured database. PostgreSQL connects lazily, so a server started with
/// `TESSERA_MIGRATE=false` comes up while the database is down and turns ready when it answers.
pub async fn connect(config: &DatabaseConfig) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match &config.url {
        DatabaseUrl::Postgres(options) => Arc::new(PgStore::connect(options, config)),
        DatabaseUrl::Sqlite { options, path } => {
            Arc::new(SqliteStore::connect(options, path, config).await?)
        }
    })
}
