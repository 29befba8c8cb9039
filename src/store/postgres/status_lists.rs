//! Token Status Lists on PostgreSQL: the shared statements, nothing dialect-specific. Uses: model.

use super::PgStore;
use crate::store::sql::status_lists::status_list_store;

status_list_store!(PgStore);
