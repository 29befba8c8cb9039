//! Users: registration, lookup by id and by normalised username, updates.

use tessera::model::User;
use tessera::store::StoreError;

use super::{Fixture, secs, t0, user};
use crate::both_backends;
use crate::helpers::Backend;

fn assert_same(actual: &User, expected: &User) {
    assert_eq!(actual.user_id, expected.user_id);
    assert_eq!(actual.username, expected.username);
    assert_eq!(actual.username_key, expected.username_key);
    assert_eq!(actual.password_phc, expected.password_phc);
    assert_eq!(actual.disabled, expected.disabled);
    assert_eq!(actual.created_at, expected.created_at);
    assert_eq!(actual.updated_at, expected.updated_at);
}

async fn users_are_found_by_id_and_username_key(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.store();
    let now = t0();
    let alice = user("Alice", now);
    let bob = User {
        disabled: true,
        ..user("bob", now + secs(1))
    };
    store.add_user(&alice, &[]).await.unwrap();
    store.add_user(&bob, &[]).await.unwrap();
    assert_same(
        &store.find_user(alice.user_id).await.unwrap().unwrap(),
        &alice,
    );
    assert_same(&store.find_user(bob.user_id).await.unwrap().unwrap(), &bob);
    let found = store.find_user_by_username_key("alice").await.unwrap();
    assert_same(&found.unwrap(), &alice);
    // The key is what is matched, exactly: the display name is not a key.
    assert!(
        store
            .find_user_by_username_key("Alice")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .find_user(uuid::Uuid::new_v4())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .find_user_by_username_key("carol")
            .await
            .unwrap()
            .is_none()
    );
}

async fn a_taken_username_key_conflicts(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.store();
    let now = t0();
    let alice = user("alice", now);
    store.add_user(&alice, &[]).await.unwrap();
    // Another id, another display name, the same key.
    let twin = User {
        username: "ALICE".into(),
        ..user("alice", now)
    };
    let error = store.add_user(&twin, &[]).await.unwrap_err();
    assert!(matches!(error, StoreError::Conflict), "{error:?}");
    // The same id under another name.
    let same_id = User {
        user_id: alice.user_id,
        ..user("alicia", now)
    };
    let error = store.add_user(&same_id, &[]).await.unwrap_err();
    assert!(matches!(error, StoreError::Conflict), "{error:?}");
    assert_eq!(fx.count("select count(*) from user_account").await, 1);
    assert_same(
        &store.find_user(alice.user_id).await.unwrap().unwrap(),
        &alice,
    );
}

async fn users_are_updated_field_by_field(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.store();
    let now = t0();
    let alice = user("alice", now);
    let bob = user("bob", now);
    store.add_user(&alice, &[]).await.unwrap();
    store.add_user(&bob, &[]).await.unwrap();

    let updated = store
        .update_user(alice.user_id, Some(true), None, now + secs(1))
        .await
        .unwrap()
        .unwrap();
    assert!(updated.disabled);
    assert_eq!(updated.password_phc, alice.password_phc);
    assert_eq!(updated.updated_at, now + secs(1));
    assert_same(
        &store.find_user(alice.user_id).await.unwrap().unwrap(),
        &updated,
    );

    let updated = store
        .update_user(alice.user_id, None, Some("$argon2id$new"), now + secs(2))
        .await
        .unwrap()
        .unwrap();
    assert!(updated.disabled, "a new password leaves the flag alone");
    assert_eq!(updated.password_phc, "$argon2id$new");

    let updated = store
        .update_user(alice.user_id, Some(false), None, now + secs(3))
        .await
        .unwrap()
        .unwrap();
    assert!(!updated.disabled);
    assert_eq!(updated.password_phc, "$argon2id$new");
    assert_eq!(updated.username, "alice");
    assert_eq!(updated.created_at, now);

    let updated = store
        .update_user(alice.user_id, None, None, now + secs(4))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.updated_at, now + secs(4));
    assert!(!updated.disabled);

    // Nobody else changed.
    assert_same(&store.find_user(bob.user_id).await.unwrap().unwrap(), &bob);
}

async fn updating_an_unknown_user_finds_nothing(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.store();
    let alice = user("alice", t0());
    store.add_user(&alice, &[]).await.unwrap();
    let updated = store
        .update_user(uuid::Uuid::new_v4(), Some(true), Some("$x"), t0())
        .await
        .unwrap();
    assert!(updated.is_none());
    assert_same(
        &store.find_user(alice.user_id).await.unwrap().unwrap(),
        &alice,
    );
    assert_eq!(fx.count("select count(*) from user_account").await, 1);
}

both_backends!(
    users_are_found_by_id_and_username_key,
    a_taken_username_key_conflicts,
    users_are_updated_field_by_field,
    updating_an_unknown_user_finds_nothing,
);
