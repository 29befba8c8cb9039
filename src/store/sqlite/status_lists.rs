//! Token Status Lists on SQLite: the shared statements, nothing dialect-specific. Uses: model.

use super::SqliteStore;
use crate::store::sql::status_lists::status_list_store;

status_list_store!(SqliteStore);
