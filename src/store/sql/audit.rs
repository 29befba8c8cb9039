//! The shared part of the audit log. Each backend provides `LIST_AUDIT` (PostgreSQL types its optional filters). Uses: model, rows.

macro_rules! audit_store {
    ($store:ty) => {
        const _: () = {
            use $crate::model::{AuditEvent, AuditFilter, AuditRecord};
            use $crate::store::rows::AuditRow;
            use $crate::store::{AuditStore, StoreError};

            #[async_trait::async_trait]
            impl AuditStore for $store {
                async fn add_audit_event(&self, event: &AuditEvent) -> Result<(), StoreError> {
                    let mut tx = self.begin_write().await?;
                    Self::insert_audit(&mut tx, event).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn list_audit(
                    &self,
                    filter: &AuditFilter,
                ) -> Result<Vec<AuditRecord>, StoreError> {
                    sqlx::query_as::<_, AuditRow>(Self::LIST_AUDIT)
                        .bind(&filter.subject)
                        .bind(&filter.client_id)
                        .bind(&filter.event_type)
                        .bind(i64::from(filter.limit))
                        .fetch_all(&self.pool)
                        .await?
                        .into_iter()
                        .map(AuditRecord::try_from)
                        .collect()
                }
            }
        };
    };
}
pub(crate) use audit_store;
