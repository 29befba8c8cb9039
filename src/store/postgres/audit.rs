//! The audit log on PostgreSQL: optional filters are typed, `session_id` and `detail` read as uuid and jsonb. Uses: model.

use super::PgStore;
use crate::store::sql::audit::audit_store;

impl PgStore {
    const LIST_AUDIT: &str =
        "select audit_event_id, created_at, event_type, actor, subject, client_id,
            session_id, source_addr, detail
     from audit_event
     where ($1::text is null or subject = $1) and ($2::text is null or client_id = $2)
       and ($3::text is null or event_type = $3)
     order by audit_event_id desc limit $4";
}

audit_store!(PgStore);
