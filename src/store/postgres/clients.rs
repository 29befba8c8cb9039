//! Clients on PostgreSQL: nothing dialect-specific. Uses: model.

use super::PgStore;
use crate::store::sql::clients::client_store;

client_store!(PgStore);
