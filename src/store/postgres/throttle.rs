//! Login throttling on PostgreSQL: nothing dialect-specific. Uses: model.

use super::PgStore;
use crate::store::sql::throttle::throttle_store;

throttle_store!(PgStore);
