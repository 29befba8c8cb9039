//! Roles on SQLite: the write lock every write transaction takes orders the changes. Uses: model.

use super::SqliteStore;
use crate::store::sql::roles::role_store;

impl SqliteStore {
    /// The role's current scopes (none for a new role).
    const LOCK_ROLE: &str = "select scopes from role where name = $1";
    /// Whether the user exists.
    /// The position of a substring (0: absent).
    const POSITION: &str = "instr";
    const LOCK_USER: &str = "select user_id from user_account where user_id = $1";
}

role_store!(SqliteStore, sqlx::Sqlite);
