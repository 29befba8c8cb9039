//! Users on PostgreSQL: nothing dialect-specific. Uses: model.

use super::PgStore;
use crate::store::sql::users::user_store;

user_store!(PgStore);
