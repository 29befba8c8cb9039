//! The audit log on SQLite: untyped optional filters, `session_id` and `detail` stored as text. Uses: model.

use super::SqliteStore;
use crate::store::sql::audit::audit_store;

impl SqliteStore {
    const LIST_AUDIT: &str =
        "select audit_event_id, created_at, event_type, actor, subject, client_id,
            session_id, source_addr, detail
     from audit_event
     where ($1 is null or subject = $1) and ($2 is null or client_id = $2)
       and ($3 is null or event_type = $3)
     order by audit_event_id desc limit $4";
}

audit_store!(SqliteStore);
