//! The change feed on SQLite: a single instance, so no notifications; polling the versions covers the command line. Uses: nothing.

use super::SqliteStore;
use crate::store::sql::feed::change_feed;
use crate::store::{ChangeListener, StoreError};

impl SqliteStore {
    async fn listener(&self) -> Result<Option<Box<dyn ChangeListener>>, StoreError> {
        Ok(None)
    }
}

change_feed!(SqliteStore);
