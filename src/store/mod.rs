//! Storage: one small trait per aggregate, gathered into `Store`, with a PostgreSQL (production, shared by several instances) and a SQLite (embedded, single instance) implementation in mirrored files. All SQL lives in `sql/` (what both dialects share), `postgres/` and `sqlite/`. Uses: config, crypto, model.
//!
//! # Layout
//! - `infra.rs`, `keys.rs`, `clients.rs`, `users.rs`, `sessions.rs`, `authorization.rs`, `revocations.rs`, `roles.rs`,
//!   `audit.rs`, `throttle.rs`, `feed.rs`, `status_lists.rs`: the traits and the outcome enums their
//!   methods return.
//! - `rows.rs`: the rows both backends decode, and the column newtypes (`DbTime`, `DbUuid`,
//!   `JsonText`, `Digest`) that carry each dialect's encoding.
//! - `sql/`: statements and method bodies that are the same in both dialects, written once.
//! - `postgres/<aggregate>.rs`, `sqlite/<aggregate>.rs`: the same items in the same order, so a
//!   diff of a pair shows only dialect.

use std::sync::Arc;

use crate::config::{DatabaseConfig, DatabaseUrl};

mod audit;
mod authorization;
mod clients;
mod error;
mod feed;
mod infra;
mod keys;
mod revocations;
mod roles;
pub(crate) mod rows;
mod sessions;
mod sql;
pub mod status_lists;
mod throttle;
mod users;

mod postgres;
mod sqlite;

pub use audit::AuditStore;
pub use authorization::{AuthorizationStore, CodeRedeemed};
pub use clients::{ClientChange, ClientStore, SecretRotation, Update};
pub use error::StoreError;
pub use feed::{CHANGE_CHANNEL, ChangeFeed, ChangeListener, topic};
pub use infra::{Backend, Infra};
pub use keys::{KeyRotation, KeyStore, KeysAdded, Rewrap};
pub use postgres::PgStore;
pub use revocations::{RevocationAdded, RevocationStore};
pub use roles::{RoleStore, RoleWrite};
pub use sessions::{Consumed, Rotation, SessionAdded, SessionRevocation, SessionStore};
pub use sqlite::SqliteStore;
pub use status_lists::{BuilderLease, StatusLease, StatusListStore, StatusPurge};
pub use throttle::{Reservation, ThrottleRule, ThrottleStore};
pub use users::UserStore;

/// What every layer above needs from the database. Multi-statement invariants are single
/// methods with their transaction inside, so no caller can leave half a change behind.
pub trait Store:
    Infra
    + KeyStore
    + ClientStore
    + UserStore
    + SessionStore
    + AuthorizationStore
    + RevocationStore
    + RoleStore
    + StatusListStore
    + AuditStore
    + ThrottleStore
    + ChangeFeed
    + Send
    + Sync
    + 'static
{
}

impl<T> Store for T where
    T: Infra
        + KeyStore
        + ClientStore
        + UserStore
        + SessionStore
        + AuthorizationStore
        + RevocationStore
        + RoleStore
        + StatusListStore
        + AuditStore
        + ThrottleStore
        + ChangeFeed
        + Send
        + Sync
        + 'static
{
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
