//! The change feed on PostgreSQL: LISTEN for the other instances' announcements. Uses: nothing.

use async_trait::async_trait;
use sqlx::postgres::PgListener;

use super::PgStore;
use crate::store::sql::feed::change_feed;
use crate::store::{CHANGE_CHANNEL, ChangeListener, StoreError};

struct PgChangeListener(PgListener);

#[async_trait]
impl ChangeListener for PgChangeListener {
    async fn recv(&mut self) -> Result<String, StoreError> {
        Ok(self.0.recv().await?.payload().to_owned())
    }
}

impl PgStore {
    async fn listener(&self) -> Result<Option<Box<dyn ChangeListener>>, StoreError> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(CHANGE_CHANNEL).await?;
        Ok(Some(Box::new(PgChangeListener(listener))))
    }
}

change_feed!(PgStore);
