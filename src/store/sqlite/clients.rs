//! Clients on SQLite: nothing dialect-specific. Uses: model.

use super::SqliteStore;
use crate::store::sql::clients::client_store;

client_store!(SqliteStore);
