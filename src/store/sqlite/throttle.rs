//! Login throttling on SQLite: nothing dialect-specific. Uses: model.

use super::SqliteStore;
use crate::store::sql::throttle::throttle_store;

throttle_store!(SqliteStore);
