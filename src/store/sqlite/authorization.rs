//! Browser sessions and authorization codes on SQLite: all shared SQL; the redemption waits for an offboarding in progress through the backend's `USER_ENABLED`. Uses: model.

use super::SqliteStore;
use crate::store::sql::authorization::authorization_store;

authorization_store!(SqliteStore);
