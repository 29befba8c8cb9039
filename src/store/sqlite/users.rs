//! Users on SQLite: nothing dialect-specific. Uses: model.

use super::SqliteStore;
use crate::store::sql::users::user_store;

user_store!(SqliteStore);
