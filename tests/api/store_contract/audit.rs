//! The audit log: events written as given, listed newest first through the admin filters.

use tessera::model::{AuditEvent, AuditFilter, AuditRecord};

use super::{Fixture, audit, secs, t0};
use crate::both_backends;
use crate::helpers::Backend;

fn filter(
    subject: Option<&str>,
    client_id: Option<&str>,
    event_type: Option<&str>,
    limit: u32,
) -> AuditFilter {
    AuditFilter {
        subject: subject.map(str::to_owned),
        client_id: client_id.map(str::to_owned),
        event_type: event_type.map(str::to_owned),
        limit,
    }
}

fn types(records: &[AuditRecord]) -> Vec<&str> {
    records.iter().map(|r| r.event_type.as_str()).collect()
}

async fn events_are_stored_as_given(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let now = t0();
    let session_id = uuid::Uuid::new_v4();
    let event = AuditEvent {
        event_type: "session_created",
        actor: Some("web".into()),
        subject: Some("8d5c2f3a-0000-4000-8000-00000000000a".into()),
        client_id: Some("web".into()),
        session_id: Some(session_id),
        source_addr: Some("192.0.2.7".into()),
        detail: serde_json::json!({"scope": "read write", "nested": {"n": 1, "list": [true, null]}}),
        created_at: now,
    };
    fx.store().add_audit_event(&event).await.unwrap();
    let bare = audit("key_rotated", now + secs(1));
    let bare = AuditEvent {
        actor: None,
        ..bare
    };
    fx.store().add_audit_event(&bare).await.unwrap();
    let records = fx
        .store()
        .list_audit(&filter(None, None, None, 10))
        .await
        .unwrap();
    assert_eq!(types(&records), ["key_rotated", "session_created"]);
    let stored = &records[1];
    assert_eq!(stored.created_at, now);
    assert_eq!(stored.actor.as_deref(), Some("web"));
    assert_eq!(stored.subject, event.subject);
    assert_eq!(stored.client_id.as_deref(), Some("web"));
    assert_eq!(stored.session_id, Some(session_id.to_string()));
    assert_eq!(stored.source_addr.as_deref(), Some("192.0.2.7"));
    assert_eq!(stored.detail, event.detail);
    let bare = &records[0];
    assert_eq!(bare.created_at, now + secs(1));
    assert_eq!(bare.actor, None);
    assert_eq!(bare.subject, None);
    assert_eq!(bare.client_id, None);
    assert_eq!(bare.session_id, None);
    assert_eq!(bare.source_addr, None);
    assert_eq!(bare.detail, serde_json::json!({}));
    assert!(records[0].audit_event_id > records[1].audit_event_id);
}

async fn the_log_is_filtered_newest_first(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let now = t0();
    // (type, subject, client); written in this order.
    let written = [
        ("login_failed", Some("alice"), Some("web")),
        ("session_created", Some("alice"), Some("web")),
        ("session_created", Some("bob"), Some("web")),
        ("client_created", None, Some("cli")),
        ("session_created", Some("alice"), Some("cli")),
        ("user_created", Some("carol"), None),
    ];
    for (i, (event_type, subject, client_id)) in written.into_iter().enumerate() {
        let event = AuditEvent {
            subject: subject.map(str::to_owned),
            client_id: client_id.map(str::to_owned),
            // Ties and clock steps back do not reorder: ids do.
            ..audit(event_type, now - secs(i as i64 % 2))
        };
        fx.store().add_audit_event(&event).await.unwrap();
    }
    let store = fx.store();
    let all = store
        .list_audit(&filter(None, None, None, 100))
        .await
        .unwrap();
    assert_eq!(
        types(&all),
        [
            "user_created",
            "session_created",
            "client_created",
            "session_created",
            "session_created",
            "login_failed"
        ]
    );
    assert!(
        all.windows(2)
            .all(|w| w[0].audit_event_id > w[1].audit_event_id)
    );

    let alice = store
        .list_audit(&filter(Some("alice"), None, None, 100))
        .await
        .unwrap();
    assert_eq!(
        types(&alice),
        ["session_created", "session_created", "login_failed"]
    );
    assert!(alice.iter().all(|r| r.subject.as_deref() == Some("alice")));

    let web = store
        .list_audit(&filter(None, Some("web"), None, 100))
        .await
        .unwrap();
    assert_eq!(web.len(), 3);
    assert!(web.iter().all(|r| r.client_id.as_deref() == Some("web")));

    let created = store
        .list_audit(&filter(None, None, Some("session_created"), 100))
        .await
        .unwrap();
    assert_eq!(created.len(), 3);

    // Filters combine.
    let one = store
        .list_audit(&filter(
            Some("alice"),
            Some("cli"),
            Some("session_created"),
            100,
        ))
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].audit_event_id, all[1].audit_event_id);
    let none = store
        .list_audit(&filter(Some("bob"), Some("cli"), None, 100))
        .await
        .unwrap();
    assert!(none.is_empty());
    let none = store
        .list_audit(&filter(None, None, Some("nothing"), 100))
        .await
        .unwrap();
    assert!(none.is_empty());

    // A limit keeps the newest.
    let newest = store
        .list_audit(&filter(None, None, None, 2))
        .await
        .unwrap();
    assert_eq!(
        newest.iter().map(|r| r.audit_event_id).collect::<Vec<_>>(),
        all[..2]
            .iter()
            .map(|r| r.audit_event_id)
            .collect::<Vec<_>>()
    );
    let newest_alice = store
        .list_audit(&filter(Some("alice"), None, None, 1))
        .await
        .unwrap();
    assert_eq!(newest_alice.len(), 1);
    assert_eq!(newest_alice[0].audit_event_id, all[1].audit_event_id);
    assert_eq!(fx.count("select count(*) from audit_event").await, 6);
}

both_backends!(events_are_stored_as_given, the_log_is_filtered_newest_first);
