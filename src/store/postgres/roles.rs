//! Roles on PostgreSQL: a change locks the role or user row it changes, so two changes of one role or one user take turns. Uses: model.

use super::PgStore;
use crate::store::sql::roles::role_store;

impl PgStore {
    /// The role's current scopes, its row locked until commit (none for a new role).
    const LOCK_ROLE: &str = "select scopes from role where name = $1 for update";
    /// The user row, locked until commit: a login waits for the change (it shares the lock).
    /// The position of a substring (0: absent).
    const POSITION: &str = "strpos";
    const LOCK_USER: &str = "select user_id from user_account where user_id = $1 for update";
}

role_store!(PgStore, sqlx::Postgres);
