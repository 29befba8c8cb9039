//! Sessions and their refresh tokens: a login stores both, a rotation consumes a token once
//! and stores its successor, a revocation ends the whole family.

use std::sync::Arc;

use tessera::model::{AuditFilter, NewRefreshToken, RefreshTokenState, RevocationKind, Session};

use super::{Fixture, audit, digest, rotate, rotation, secs, session, t0, token};
use crate::both_backends;
use crate::helpers::Backend;
use tessera::store::{Consumed, Rotation, SessionAdded, SessionRevocation};

/// Rows of `table` belonging to `session`, matching `condition`.
async fn rows(fx: &Fixture, table: &str, session: &Session, condition: &str) -> i64 {
    fx.count(&format!(
        "select count(*) from {table} where session_id = '{}' and {condition}",
        session.session_id
    ))
    .await
}

async fn a_session_is_added_with_its_first_token(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (client, user) = fx.principal("web", "alice").await;
    let now = t0();
    let session = session(&client, &user, now);
    let added = fx
        .store()
        .add_session(&session, Some(&token(&session, 1, now)))
        .await
        .unwrap();
    assert_eq!(added, SessionAdded::Added);
    assert_eq!(
        rows(&fx, "session", &session, "revoked_at is null").await,
        1
    );
    assert_eq!(rows(&fx, "refresh_token", &session, "true").await, 1);
    let found = fx
        .store()
        .find_refresh_token(session.session_id, &digest(1))
        .await
        .unwrap()
        .expect("the first token");
    assert_eq!(found.session_id, session.session_id);
    assert_eq!(found.scope, "read write");
}

async fn a_session_may_start_without_a_token(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (client, user) = fx.principal("web", "alice").await;
    let session = session(&client, &user, t0());
    let added = fx.store().add_session(&session, None).await.unwrap();
    assert_eq!(added, SessionAdded::Added);
    assert_eq!(rows(&fx, "session", &session, "true").await, 1);
    assert_eq!(fx.count("select count(*) from refresh_token").await, 0);
    // The same id twice is refused by the database, not silently merged.
    let again = fx.store().add_session(&session, None).await;
    assert!(again.is_err());
    assert_eq!(fx.count("select count(*) from session").await, 1);
}

async fn a_disabled_or_unknown_user_gets_no_session(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (client, alice) = fx.principal("web", "alice").await;
    let now = t0();
    fx.store()
        .update_user(alice.user_id, Some(true), None, now)
        .await
        .unwrap()
        .unwrap();
    let refused = session(&client, &alice, now);
    let added = fx
        .store()
        .add_session(&refused, Some(&token(&refused, 1, now)))
        .await
        .unwrap();
    assert_eq!(added, SessionAdded::UserDisabled);
    let ghost = super::user("ghost", now);
    let unknown = session(&client, &ghost, now);
    let added = fx
        .store()
        .add_session(&unknown, Some(&token(&unknown, 2, now)))
        .await
        .unwrap();
    assert_eq!(added, SessionAdded::UserDisabled);
    assert_eq!(fx.count("select count(*) from session").await, 0);
    assert_eq!(fx.count("select count(*) from refresh_token").await, 0);
    // Enabled again, the user logs in.
    fx.store()
        .update_user(alice.user_id, Some(false), None, now)
        .await
        .unwrap()
        .unwrap();
    let added = fx
        .store()
        .add_session(&refused, Some(&token(&refused, 1, now)))
        .await
        .unwrap();
    assert_eq!(added, SessionAdded::Added);
}

async fn refresh_tokens_are_found_by_session_and_digest(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (client, user) = fx.principal("web", "alice").await;
    let now = t0();
    let first = fx.session(&client, &user, 1, now).await;
    let second = fx.session(&client, &user, 2, now).await;
    let store = fx.store();
    assert!(
        store
            .find_refresh_token(first.session_id, &digest(1))
            .await
            .unwrap()
            .is_some()
    );
    // A digest is only found in its own session.
    assert!(
        store
            .find_refresh_token(first.session_id, &digest(2))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .find_refresh_token(second.session_id, &digest(1))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .find_refresh_token(uuid::Uuid::new_v4(), &digest(1))
            .await
            .unwrap()
            .is_none()
    );
}

/// Rotates `from` into a successor with digest `to`.
async fn consume(
    fx: &Fixture,
    session: &Session,
    from: u8,
    to: u8,
    at: time::OffsetDateTime,
) -> bool {
    rotate(fx.store(), rotation(session, from, to, at)).await == Consumed::Rotated
}

async fn a_token_is_consumed_once(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (client, user) = fx.principal("web", "alice").await;
    let now = t0();
    let session = fx.session(&client, &user, 1, now).await;
    let store = fx.store();

    // A narrowed successor keeps its own scope.
    let narrowed = NewRefreshToken {
        scope: "read".into(),
        ..token(&session, 2, now + secs(1))
    };
    let narrowed = Rotation {
        successor: narrowed,
        ..rotation(&session, 1, 2, now + secs(1))
    };
    let rotated = rotate(store, narrowed).await;
    assert_eq!(rotated, Consumed::Rotated);
    let successor = store
        .find_refresh_token(session.session_id, &digest(2))
        .await
        .unwrap()
        .expect("the successor is stored");
    assert_eq!(successor.scope, "read");
    assert_eq!(successor.session_id, session.session_id);
    assert_eq!(rows(&fx, "refresh_token", &session, "true").await, 2);
    assert_eq!(
        rows(&fx, "refresh_token", &session, "consumed_at is not null").await,
        1
    );

    // The same token again (a replay, or the loser of a race): nothing changes.
    let rotated = consume(&fx, &session, 1, 3, now + secs(2)).await;
    assert!(!rotated);
    assert!(
        store
            .find_refresh_token(session.session_id, &digest(3))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(rows(&fx, "refresh_token", &session, "true").await, 2);

    // The successor rotates in turn, once.
    let rotated = consume(&fx, &session, 2, 4, now + secs(3)).await;
    assert!(rotated);
    let rotated = consume(&fx, &session, 2, 5, now + secs(4)).await;
    assert!(!rotated);
    assert_eq!(rows(&fx, "refresh_token", &session, "true").await, 3);
    assert_eq!(
        rows(
            &fx,
            "refresh_token",
            &session,
            "consumed_at is null and revoked_at is null"
        )
        .await,
        1
    );

    // A digest that is no token of this session.
    let rotated = consume(&fx, &session, 9, 6, now + secs(5)).await;
    assert!(!rotated);
    assert_eq!(rows(&fx, "refresh_token", &session, "true").await, 3);

    // One `refresh` event per rotation (two), none for the refused attempts.
    assert_eq!(refresh_events(&fx, &session).await, 2);
}

/// Without a retry window (grace 0) a rotation keeps no sealed successor.
async fn a_rotation_may_seal_nothing(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (client, user) = fx.principal("web", "alice").await;
    let now = t0();
    let session = fx.session(&client, &user, 1, now).await;
    let unsealed = Rotation {
        successor_ciphertext: None,
        ..rotation(&session, 1, 2, now + secs(1))
    };
    let rotated = rotate(fx.store(), unsealed).await;
    assert_eq!(rotated, Consumed::Rotated);
    let consumed = fx
        .store()
        .find_refresh_token(session.session_id, &digest(1))
        .await
        .unwrap()
        .unwrap();
    let RefreshTokenState::Consumed { at, successor } = consumed.state else {
        panic!("consumed: {:?}", consumed.state);
    };
    assert_eq!(at, now + secs(1));
    assert_eq!(successor.sealed, None);
    assert!(successor.unused);
    assert_eq!(
        rows(
            &fx,
            "refresh_token",
            &session,
            "successor_ciphertext is not null"
        )
        .await,
        0
    );
}

/// The `refresh` audit events of `session`.
async fn refresh_events(fx: &Fixture, session: &Session) -> i64 {
    rows(fx, "audit_event", session, "event_type = 'refresh'").await
}

/// A rotation records its `refresh` event as given, in its own transaction.
async fn a_rotation_records_its_audit_event(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (client, user) = fx.principal("web", "alice").await;
    let now = t0();
    let session = fx.session(&client, &user, 1, now).await;
    assert!(consume(&fx, &session, 1, 2, now + secs(1)).await);
    let records = fx
        .store()
        .list_audit(&tessera::model::AuditFilter {
            subject: None,
            client_id: None,
            event_type: Some("refresh".into()),
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(records.len(), 1, "{records:?}");
    let event = &records[0];
    assert_eq!(event.created_at, now + secs(1));
    assert_eq!(event.actor.as_deref(), Some("web"));
    assert_eq!(event.subject, Some(user.user_id.to_string()));
    assert_eq!(event.client_id.as_deref(), Some("web"));
    assert_eq!(event.session_id, Some(session.session_id.to_string()));
    assert_eq!(event.source_addr.as_deref(), Some("192.0.2.1"));
    assert_eq!(event.detail, serde_json::json!({ "scope": "read write" }));
}

async fn a_revoked_session_consumes_nothing(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (client, user) = fx.principal("web", "alice").await;
    let now = t0();
    let session = fx.session(&client, &user, 1, now).await;
    let revoked = fx
        .store()
        .revoke_session(session.session_id, "logout", now, now + secs(300), None)
        .await
        .unwrap();
    assert_eq!(revoked, SessionRevocation::Revoked);
    let rotated = consume(&fx, &session, 1, 2, now + secs(1)).await;
    assert!(!rotated);
    assert!(
        fx.store()
            .find_refresh_token(session.session_id, &digest(2))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(rows(&fx, "refresh_token", &session, "true").await, 1);
    assert_eq!(
        rows(&fx, "refresh_token", &session, "consumed_at is null").await,
        1
    );
    assert_eq!(refresh_events(&fx, &session).await, 0);
}

async fn a_session_is_revoked_once(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (client, user) = fx.principal("web", "alice").await;
    let now = t0();
    let session = fx.session(&client, &user, 1, now).await;
    let bystander = fx.session(&client, &user, 7, now).await;
    let rotated = consume(&fx, &session, 1, 2, now + secs(1)).await;
    assert!(rotated);
    let mut event = audit("session_revoked", now + secs(2));
    event.session_id = Some(session.session_id);
    let expires = now + secs(600);
    let revoked = fx
        .store()
        .revoke_session(
            session.session_id,
            "logout",
            now + secs(2),
            expires,
            Some(&event),
        )
        .await
        .unwrap();
    assert_eq!(revoked, SessionRevocation::Revoked);
    assert_eq!(
        rows(&fx, "session", &session, "revoked_at is not null").await,
        1
    );
    // Every token of the family is revoked, consumed or not, and no sealed successor is kept.
    assert_eq!(
        rows(&fx, "refresh_token", &session, "revoked_at is not null").await,
        2
    );
    assert_eq!(
        rows(
            &fx,
            "refresh_token",
            &session,
            "successor_ciphertext is not null"
        )
        .await,
        0
    );
    let revocations = fx
        .store()
        .list_revocations(0, now + secs(2), 100)
        .await
        .unwrap();
    assert_eq!(revocations.len(), 1);
    assert_eq!(revocations[0].kind, RevocationKind::Session);
    assert_eq!(revocations[0].value, session.session_id.to_string());
    assert_eq!(revocations[0].revoked_at, now + secs(2));
    assert_eq!(revocations[0].expires_at, expires);
    let events = fx
        .store()
        .list_audit(&AuditFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let events: Vec<_> = events
        .into_iter()
        .filter(|e| e.event_type != "refresh")
        .collect();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_type, "session_revoked");
    assert_eq!(
        events[0].session_id.as_deref(),
        Some(session.session_id.to_string().as_str())
    );

    // Again: nothing more is revoked or recorded.
    let revoked = fx
        .store()
        .revoke_session(session.session_id, "logout", now + secs(3), expires, None)
        .await
        .unwrap();
    assert_eq!(revoked, SessionRevocation::NotLive);
    assert_eq!(fx.count("select count(*) from revocation").await, 1);
    // Unknown sessions are not revoked either.
    let revoked = fx
        .store()
        .revoke_session(uuid::Uuid::new_v4(), "logout", now, expires, None)
        .await
        .unwrap();
    assert_eq!(revoked, SessionRevocation::NotLive);
    assert_eq!(fx.count("select count(*) from revocation").await, 1);

    // The user's other session is untouched.
    assert_eq!(
        rows(&fx, "session", &bystander, "revoked_at is null").await,
        1
    );
    let rotated = consume(&fx, &bystander, 7, 8, now + secs(4)).await;
    assert!(rotated);
}

/// Many requests present one token at once: exactly one rotation happens.
async fn concurrent_consumes_have_one_winner(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (client, user) = fx.principal("web", "alice").await;
    let now = t0();
    let session = fx.session(&client, &user, 1, now).await;
    let tasks: Vec<_> = (0..16u8)
        .map(|i| {
            let store = Arc::clone(&fx.store);
            let rotation = rotation(&session, 1, 100 + i, now + secs(1));
            tokio::spawn(async move { rotate(&*store, rotation).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    assert_eq!(
        outcomes.iter().filter(|o| **o == Consumed::Rotated).count(),
        1
    );
    let winner = outcomes
        .iter()
        .position(|o| *o == Consumed::Rotated)
        .unwrap();
    assert_eq!(rows(&fx, "refresh_token", &session, "true").await, 2);
    // The winner's successor is the one stored.
    for i in 0..16u8 {
        let found = fx
            .store()
            .find_refresh_token(session.session_id, &digest(100 + i))
            .await
            .unwrap();
        assert_eq!(found.is_some(), usize::from(i) == winner, "successor {i}");
    }
    // Only the winner's rotation is recorded.
    assert_eq!(refresh_events(&fx, &session).await, 1);
}

/// A batch answers each rotation on its own, in order: the same token twice rotates once, a
/// revoked session and an unknown token change nothing, and the others rotate with their audit
/// events, in one transaction.
async fn a_batch_answers_each_rotation_on_its_own(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (client, user) = fx.principal("web", "alice").await;
    let now = t0();
    let first = fx.session(&client, &user, 1, now).await;
    let second = fx.session(&client, &user, 2, now).await;
    let revoked = fx.session(&client, &user, 3, now).await;
    fx.store()
        .revoke_session(revoked.session_id, "logout", now, now + secs(300), None)
        .await
        .unwrap();
    let at = now + secs(1);
    let batch = [
        rotation(&first, 1, 11, at),
        rotation(&first, 1, 12, at),
        rotation(&second, 2, 21, at),
        rotation(&revoked, 3, 31, at),
        rotation(&second, 99, 22, at),
    ];
    let outcomes = fx.store().consume_refresh_tokens(&batch).await.unwrap();
    assert_eq!(
        outcomes,
        [
            Consumed::Rotated,
            Consumed::NotLive,
            Consumed::Rotated,
            Consumed::NotLive,
            Consumed::NotLive,
        ]
    );
    let store = fx.store();
    let found = |session: &Session, n: u8| {
        let session_id = session.session_id;
        async move {
            store
                .find_refresh_token(session_id, &digest(n))
                .await
                .unwrap()
        }
    };
    assert!(found(&first, 11).await.is_some());
    assert!(found(&first, 12).await.is_none(), "one successor per token");
    assert!(found(&second, 21).await.is_some());
    assert!(found(&second, 22).await.is_none());
    assert!(found(&revoked, 31).await.is_none());
    for (session, events) in [(&first, 1), (&second, 1), (&revoked, 0)] {
        assert_eq!(refresh_events(&fx, session).await, events);
        assert!(
            rows(
                &fx,
                "refresh_token",
                session,
                "consumed_at is null and revoked_at is null"
            )
            .await
                <= 1
        );
    }
    // The successor sealed for the retry window is the one of the rotation that happened.
    let consumed = found(&first, 1).await.unwrap();
    assert!(matches!(consumed.state, RefreshTokenState::Consumed { .. }));
    assert_eq!(
        fx.count(&format!(
            "select count(*) from refresh_token where session_id = '{}' and successor_digest is not null",
            first.session_id
        ))
        .await,
        1
    );
    // An empty batch is no transaction at all.
    assert!(store.consume_refresh_tokens(&[]).await.unwrap().is_empty());
}

/// A batch that fails as a whole (here PostgreSQL refuses one rotation's text) is tried again
/// one rotation at a time: only the refused rotation fails, its batch-mates rotate.
async fn a_failed_batch_fails_only_its_culprit(backend: Backend) {
    use tessera::domain::RotationBatching;
    use tessera::domain::rotations::Rotations;
    let fx = Fixture::new(backend).await;
    let (client, user) = fx.principal("web", "alice").await;
    let now = t0();
    let sessions = [
        fx.session(&client, &user, 1, now).await,
        fx.session(&client, &user, 2, now).await,
        fx.session(&client, &user, 3, now).await,
    ];
    // Exactly these three form the batch.
    let rotations = Arc::new(Rotations::new(
        Arc::clone(&fx.store),
        RotationBatching {
            max_wait: std::time::Duration::from_secs(10),
            max_size: 3,
        },
    ));
    let mut tasks = Vec::new();
    for (i, session) in sessions.iter().enumerate() {
        let n = u8::try_from(i).unwrap() + 1;
        let mut rotation = rotation(session, n, n + 10, now + secs(1));
        if n == 2 {
            rotation.audit.source_addr = Some("192.0.2.1\0".into());
        }
        let rotations = Arc::clone(&rotations);
        tasks.push(tokio::spawn(
            async move { rotations.consume(rotation).await },
        ));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    assert_eq!(outcomes[0].as_ref().unwrap(), &Consumed::Rotated);
    assert_eq!(outcomes[2].as_ref().unwrap(), &Consumed::Rotated);
    if backend == Backend::Postgres {
        assert!(outcomes[1].is_err(), "{:?}", outcomes[1]);
        assert_eq!(refresh_events(&fx, &sessions[1]).await, 0);
        assert_eq!(
            rows(&fx, "refresh_token", &sessions[1], "consumed_at is null").await,
            1
        );
    }
    for i in [0, 2] {
        assert_eq!(refresh_events(&fx, &sessions[i]).await, 1);
    }
}

both_backends!(
    a_session_is_added_with_its_first_token,
    a_session_may_start_without_a_token,
    a_disabled_or_unknown_user_gets_no_session,
    refresh_tokens_are_found_by_session_and_digest,
    a_token_is_consumed_once,
    a_rotation_records_its_audit_event,
    a_rotation_may_seal_nothing,
    a_revoked_session_consumes_nothing,
    a_session_is_revoked_once,
    concurrent_consumes_have_one_winner,
    a_batch_answers_each_rotation_on_its_own,
    a_failed_batch_fails_only_its_culprit,
);
