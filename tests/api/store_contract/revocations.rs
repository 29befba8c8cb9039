//! Revocations: single entries, loaded incrementally by id while in force, and the revocation
//! of a whole principal (a user or a client) with its sessions.

use tessera::model::{AuditEvent, AuditFilter, Revocation, RevocationKind, Session};

use super::{Fixture, audit, secs, t0, token};
use crate::both_backends;
use crate::helpers::Backend;
use tessera::store::{Consumed, RevocationAdded, SessionAdded, SessionRevocation};

fn kinds_and_values(revocations: &[Revocation]) -> Vec<(RevocationKind, String)> {
    revocations
        .iter()
        .map(|r| (r.kind, r.value.clone()))
        .collect()
}

fn revocation_event(
    subject: Option<&str>,
    client_id: Option<&str>,
    at: time::OffsetDateTime,
) -> AuditEvent {
    AuditEvent {
        subject: subject.map(str::to_owned),
        client_id: client_id.map(str::to_owned),
        ..audit("revoked", at)
    }
}

/// Whether `session`'s live token (digest `from`) can still rotate.
async fn rotates(fx: &Fixture, session: &Session, from: u8, at: time::OffsetDateTime) -> bool {
    let rotation = super::rotation(session, from, from + 100, at);
    super::rotate(fx.store(), rotation).await == Consumed::Rotated
}

async fn revocations_are_listed_in_id_order_after_a_cursor(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.store();
    let now = t0();
    let entries = [
        (RevocationKind::Jti, "jti-1"),
        (
            RevocationKind::Session,
            "3f0c5c1e-0000-4000-8000-000000000001",
        ),
        (RevocationKind::Client, "web"),
    ];
    for (i, (kind, value)) in entries.iter().enumerate() {
        let at = now + secs(i as i64);
        store
            .add_revocation(
                *kind,
                value,
                at,
                now + secs(3600),
                &audit("token_revoked", at),
                None,
            )
            .await
            .unwrap();
    }
    let all = store.list_revocations(0, now, 100).await.unwrap();
    let expected: Vec<_> = entries.iter().map(|(k, v)| (*k, v.to_string())).collect();
    assert_eq!(kinds_and_values(&all), expected);
    assert!(
        all.windows(2)
            .all(|w| w[0].revocation_id < w[1].revocation_id)
    );
    assert_eq!(all[1].revoked_at, now + secs(1));
    assert_eq!(all[1].expires_at, now + secs(3600));
    // After a cursor: only later ids.
    let later = store
        .list_revocations(all[0].revocation_id, now, 100)
        .await
        .unwrap();
    assert_eq!(kinds_and_values(&later), expected[1..].to_vec());
    assert!(
        store
            .list_revocations(all[2].revocation_id, now, 100)
            .await
            .unwrap()
            .is_empty()
    );
    // A limit takes the lowest ids first.
    let first_two = store.list_revocations(0, now, 2).await.unwrap();
    assert_eq!(kinds_and_values(&first_two), expected[..2].to_vec());
    // Each revocation wrote its audit event.
    let events = store
        .list_audit(&AuditFilter {
            event_type: Some("token_revoked".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(|e| e.actor.as_deref() == Some("admin")));
    assert_eq!(fx.count("select count(*) from revocation").await, 3);
}

async fn expired_revocations_are_not_listed(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.store();
    let now = t0();
    for (value, ttl) in [("short", 10), ("long", 3600)] {
        store
            .add_revocation(
                RevocationKind::Jti,
                value,
                now,
                now + secs(ttl),
                &audit("token_revoked", now),
                None,
            )
            .await
            .unwrap();
    }
    let listed = |at| async move {
        let revocations = store.list_revocations(0, at, 100).await.unwrap();
        revocations.into_iter().map(|r| r.value).collect::<Vec<_>>()
    };
    assert_eq!(listed(now).await, ["short", "long"]);
    assert_eq!(listed(now + secs(9)).await, ["short", "long"]);
    // In force until, not at, its expiry.
    assert_eq!(listed(now + secs(10)).await, ["long"]);
    assert!(listed(now + secs(3600)).await.is_empty());
    // Expired rows stay until housekeeping removes them.
    assert_eq!(fx.count("select count(*) from revocation").await, 2);
}

async fn revoking_a_subject_ends_its_sessions(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (client, alice) = fx.principal("web", "alice").await;
    let bob = super::user("bob", t0());
    fx.store().add_user(&bob, &[]).await.unwrap();
    let now = t0();
    let first = fx.session(&client, &alice, 1, now).await;
    let second = fx.session(&client, &alice, 2, now).await;
    let ended = fx.session(&client, &alice, 3, now).await;
    let bobs = fx.session(&client, &bob, 4, now).await;
    let revoked = fx
        .store()
        .revoke_session(ended.session_id, "logout", now, now + secs(60), None)
        .await
        .unwrap();
    assert_eq!(revoked, SessionRevocation::Revoked);

    let alice_id = alice.user_id.to_string();
    let at = now + secs(5);
    let cutoff_expires = at + secs(900);
    let event = revocation_event(Some(&alice_id), None, at);
    let sessions = fx
        .store()
        .revoke_principal(
            RevocationKind::Subject,
            &alice_id,
            false,
            at,
            cutoff_expires,
            &event,
        )
        .await
        .unwrap();
    assert_eq!(sessions, 2, "the live sessions, not the one already ended");
    for (session, digest) in [(&first, 1), (&second, 2)] {
        assert!(!rotates(&fx, session, digest, at + secs(1)).await);
    }
    assert!(rotates(&fx, &bobs, 4, at + secs(1)).await);
    assert_eq!(
        fx.count(&format!(
            "select count(*) from session where user_id = '{alice_id}' and revoked_at is null"
        ))
        .await,
        0
    );
    assert!(
        !fx.store()
            .find_user(alice.user_id)
            .await
            .unwrap()
            .unwrap()
            .disabled
    );
    let cutoffs: Vec<_> = fx
        .store()
        .list_revocations(0, at, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == RevocationKind::Subject)
        .collect();
    assert_eq!(cutoffs.len(), 1);
    assert_eq!(cutoffs[0].value, alice_id);
    assert_eq!(cutoffs[0].revoked_at, at);
    assert_eq!(cutoffs[0].expires_at, cutoff_expires);
    let events = fx
        .store()
        .list_audit(&AuditFilter {
            subject: Some(alice_id.clone()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_type, "revoked");

    // Again: no session is left to revoke, and a later cut-off is recorded.
    let sessions = fx
        .store()
        .revoke_principal(
            RevocationKind::Subject,
            &alice_id,
            false,
            at + secs(1),
            cutoff_expires,
            &event,
        )
        .await
        .unwrap();
    assert_eq!(sessions, 0);
    assert_eq!(
        fx.count("select count(*) from revocation where kind = 'subject'")
            .await,
        2
    );
    // Not disabled: the user can log in again.
    let fresh = super::session(&client, &alice, at + secs(2));
    let added = fx
        .store()
        .add_session(&fresh, Some(&token(&fresh, 9, at + secs(2))))
        .await
        .unwrap();
    assert_eq!(added, SessionAdded::Added);
}

async fn revoking_and_disabling_a_subject_refuses_new_sessions(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (client, alice) = fx.principal("web", "alice").await;
    let now = t0();
    let session = fx.session(&client, &alice, 1, now).await;
    let alice_id = alice.user_id.to_string();
    let event = revocation_event(Some(&alice_id), None, now);
    let sessions = fx
        .store()
        .revoke_principal(
            RevocationKind::Subject,
            &alice_id,
            true,
            now,
            now + secs(900),
            &event,
        )
        .await
        .unwrap();
    assert_eq!(sessions, 1);
    assert!(!rotates(&fx, &session, 1, now + secs(1)).await);
    let user = fx.store().find_user(alice.user_id).await.unwrap().unwrap();
    assert!(user.disabled);
    assert_eq!(user.updated_at, now);
    let fresh = super::session(&client, &alice, now + secs(1));
    let added = fx.store().add_session(&fresh, None).await.unwrap();
    assert_eq!(added, SessionAdded::UserDisabled);
    // Again: idempotent, the user stays disabled.
    let sessions = fx
        .store()
        .revoke_principal(
            RevocationKind::Subject,
            &alice_id,
            true,
            now + secs(2),
            now + secs(900),
            &event,
        )
        .await
        .unwrap();
    assert_eq!(sessions, 0);
    assert!(
        fx.store()
            .find_user(alice.user_id)
            .await
            .unwrap()
            .unwrap()
            .disabled
    );
}

async fn revoking_a_client_ends_its_sessions(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (web, alice) = fx.principal("web", "alice").await;
    let other = super::client("other", t0());
    fx.store().add_client(&other).await.unwrap();
    let now = t0();
    let on_web = fx.session(&web, &alice, 1, now).await;
    let also_on_web = fx.session(&web, &alice, 2, now).await;
    let on_other = fx.session(&other, &alice, 3, now).await;
    let event = revocation_event(None, Some("web"), now);
    let sessions = fx
        .store()
        .revoke_principal(
            RevocationKind::Client,
            "web",
            false,
            now,
            now + secs(900),
            &event,
        )
        .await
        .unwrap();
    assert_eq!(sessions, 2);
    assert!(!rotates(&fx, &on_web, 1, now + secs(1)).await);
    assert!(!rotates(&fx, &also_on_web, 2, now + secs(1)).await);
    assert!(rotates(&fx, &on_other, 3, now + secs(1)).await);
    assert!(
        !fx.store()
            .find_client("web")
            .await
            .unwrap()
            .unwrap()
            .disabled
    );
    assert!(
        !fx.store()
            .find_user(alice.user_id)
            .await
            .unwrap()
            .unwrap()
            .disabled
    );
    // The cut-off, and an entry per session revoked: an access token minted by a refresh that
    // committed just before the sessions were locked carries one of these sids.
    let revocations = fx.store().list_revocations(0, now, 100).await.unwrap();
    let mut sids = [
        on_web.session_id.to_string(),
        also_on_web.session_id.to_string(),
    ];
    sids.sort();
    let mut listed = kinds_and_values(&revocations);
    listed[1..].sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(
        listed,
        [
            (RevocationKind::Client, "web".to_owned()),
            (RevocationKind::Session, sids[0].clone()),
            (RevocationKind::Session, sids[1].clone()),
        ]
    );
    assert!(
        revocations[1..]
            .iter()
            .all(|r| r.revoked_at == now && r.expires_at == now + secs(900))
    );
    let events = fx
        .store()
        .list_audit(&AuditFilter {
            client_id: Some("web".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(events.len(), 1);

    let sessions = fx
        .store()
        .revoke_principal(
            RevocationKind::Client,
            "web",
            false,
            now + secs(1),
            now + secs(900),
            &event,
        )
        .await
        .unwrap();
    assert_eq!(sessions, 0);
    // Not disabled: tokens may have been issued since, so a later cut-off is recorded.
    assert_eq!(fx.count("select count(*) from revocation").await, 4);
}

async fn revoking_and_disabling_a_client(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (web, alice) = fx.principal("web", "alice").await;
    let now = t0();
    let session = fx.session(&web, &alice, 1, now).await;
    let event = revocation_event(None, Some("web"), now);
    let sessions = fx
        .store()
        .revoke_principal(
            RevocationKind::Client,
            "web",
            true,
            now,
            now + secs(900),
            &event,
        )
        .await
        .unwrap();
    assert_eq!(sessions, 1);
    assert!(!rotates(&fx, &session, 1, now + secs(1)).await);
    let client = fx.store().find_client("web").await.unwrap().unwrap();
    assert!(client.disabled);
    assert_eq!(client.updated_at, now);
    // The user is not the one revoked.
    assert!(
        !fx.store()
            .find_user(alice.user_id)
            .await
            .unwrap()
            .unwrap()
            .disabled
    );
}

/// A subject need not be a user: client-credentials tokens carry the client id as `sub`. Its
/// cut-off is recorded all the same, and nothing else changes.
async fn revoking_an_unknown_principal_records_the_cutoff(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (client, alice) = fx.principal("web", "alice").await;
    let now = t0();
    let session = fx.session(&client, &alice, 1, now).await;
    let unknown_user = uuid::Uuid::new_v4().to_string();
    for (kind, value) in [
        (RevocationKind::Subject, "service-client"),
        (RevocationKind::Subject, unknown_user.as_str()),
        (RevocationKind::Client, "nobody"),
    ] {
        let sessions = fx
            .store()
            .revoke_principal(
                kind,
                value,
                true,
                now,
                now + secs(900),
                &revocation_event(None, None, now),
            )
            .await
            .unwrap();
        assert_eq!(sessions, 0, "{value}");
    }
    let revocations = fx.store().list_revocations(0, now, 100).await.unwrap();
    assert_eq!(
        kinds_and_values(&revocations),
        [
            (RevocationKind::Subject, "service-client".to_owned()),
            (RevocationKind::Subject, unknown_user.clone()),
            (RevocationKind::Client, "nobody".to_owned()),
        ]
    );
    assert!(rotates(&fx, &session, 1, now + secs(1)).await);
    assert!(
        !fx.store()
            .find_client("web")
            .await
            .unwrap()
            .unwrap()
            .disabled
    );
    assert!(
        !fx.store()
            .find_user(alice.user_id)
            .await
            .unwrap()
            .unwrap()
            .disabled
    );
    assert_eq!(fx.count("select count(*) from client").await, 1);
    assert_eq!(fx.count("select count(*) from user_account").await, 1);
}

/// Rows that any write of a revocation leaves: revocations, audit events, the feed's versions.
async fn footprint(fx: &Fixture) -> [i64; 3] {
    [
        fx.count("select count(*) from revocation").await,
        fx.count("select count(*) from audit_event").await,
        fx.count("select cast(sum(version) as bigint) from change_feed")
            .await,
    ]
}

/// Revoking what is already revoked writes, announces and audits nothing.
async fn revoking_again_what_is_revoked_writes_nothing(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (client, alice) = fx.principal("web", "alice").await;
    let now = t0();
    let event = revocation_event(None, Some("web"), now);
    let added = fx
        .store()
        .add_revocation(
            RevocationKind::Jti,
            "jti-1",
            now,
            now + secs(60),
            &event,
            None,
        )
        .await
        .unwrap();
    assert_eq!(added, RevocationAdded::Added);
    let session = fx.session(&client, &alice, 1, now).await;
    let revoked = fx
        .store()
        .revoke_session(
            session.session_id,
            "revoked",
            now,
            now + secs(60),
            Some(&event),
        )
        .await
        .unwrap();
    assert_eq!(revoked, SessionRevocation::Revoked);
    for kind in [RevocationKind::Subject, RevocationKind::Client] {
        let value = match kind {
            RevocationKind::Subject => alice.user_id.to_string(),
            _ => "web".to_owned(),
        };
        fx.store()
            .revoke_principal(kind, &value, true, now, now + secs(60), &event)
            .await
            .unwrap();
    }
    let before = footprint(&fx).await;
    for i in 0..5 {
        let at = now + secs(i);
        let added = fx
            .store()
            .add_revocation(
                RevocationKind::Jti,
                "jti-1",
                at,
                at + secs(60),
                &event,
                None,
            )
            .await
            .unwrap();
        assert_eq!(added, RevocationAdded::AlreadyRevoked);
        let session_id = session.session_id.to_string();
        let again = fx
            .store()
            .add_revocation(
                RevocationKind::Session,
                &session_id,
                at,
                at + secs(60),
                &event,
                None,
            )
            .await
            .unwrap();
        assert_eq!(again, RevocationAdded::AlreadyRevoked);
        let revoked = fx
            .store()
            .revoke_session(
                session.session_id,
                "revoked",
                at,
                at + secs(60),
                Some(&event),
            )
            .await
            .unwrap();
        assert_eq!(revoked, SessionRevocation::NotLive);
        // Disabled and cut off since: with or without `disable`, nothing new to revoke.
        for disable in [true, false] {
            let sessions = fx
                .store()
                .revoke_principal(
                    RevocationKind::Subject,
                    &alice.user_id.to_string(),
                    disable,
                    at,
                    at + secs(60),
                    &event,
                )
                .await
                .unwrap();
            assert_eq!(sessions, 0);
            let sessions = fx
                .store()
                .revoke_principal(
                    RevocationKind::Client,
                    "web",
                    disable,
                    at,
                    at + secs(60),
                    &event,
                )
                .await
                .unwrap();
            assert_eq!(sessions, 0);
        }
    }
    assert_eq!(footprint(&fx).await, before);
    // Once the entry has expired, revoking again records it anew.
    let later = now + secs(61);
    let added = fx
        .store()
        .add_revocation(
            RevocationKind::Jti,
            "jti-1",
            later,
            later + secs(60),
            &event,
            None,
        )
        .await
        .unwrap();
    assert_eq!(added, RevocationAdded::Added);
    // Re-enabled, the user is no longer fully revoked: the next offboarding writes again.
    fx.store()
        .update_user(alice.user_id, Some(false), None, later)
        .await
        .unwrap();
    let before = footprint(&fx).await;
    fx.store()
        .revoke_principal(
            RevocationKind::Subject,
            &alice.user_id.to_string(),
            true,
            later,
            later + secs(60),
            &event,
        )
        .await
        .unwrap();
    assert_ne!(footprint(&fx).await, before);
}

both_backends!(
    revoking_again_what_is_revoked_writes_nothing,
    revocations_are_listed_in_id_order_after_a_cursor,
    expired_revocations_are_not_listed,
    revoking_a_subject_ends_its_sessions,
    revoking_and_disabling_a_subject_refuses_new_sessions,
    revoking_a_client_ends_its_sessions,
    revoking_and_disabling_a_client,
    revoking_an_unknown_principal_records_the_cutoff,
);
