//! The shared part of the change feed. Each backend provides `listener`. Uses: nothing.

pub(crate) const VERSIONS: &str = "select topic, version from change_feed";

macro_rules! change_feed {
    ($store:ty) => {
        const _: () = {
            use $crate::store::sql::feed as q;
            use $crate::store::{ChangeFeed, ChangeListener, StoreError};

            #[async_trait::async_trait]
            impl ChangeFeed for $store {
                async fn change_versions(&self) -> Result<Vec<(String, i64)>, StoreError> {
                    Ok(sqlx::query_as(q::VERSIONS).fetch_all(&self.pool).await?)
                }

                async fn change_listener(
                    &self,
                ) -> Result<Option<Box<dyn ChangeListener>>, StoreError> {
                    self.listener().await
                }
            }
        };
    };
}
pub(crate) use change_feed;
