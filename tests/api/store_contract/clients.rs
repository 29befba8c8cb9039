//! Clients: registration, lookup, the secret and the disabled flag.

use tessera::model::{Client, ClientSecretHash, GrantType};
use tessera::store::StoreError;

use super::{Fixture, client, secs, t0};
use crate::both_backends;
use crate::helpers::Backend;
use tessera::store::Update;

/// Every stored field of `actual` equals `expected`'s.
fn assert_same(actual: &Client, expected: &Client) {
    assert_eq!(actual.client_id, expected.client_id);
    assert_eq!(actual.name, expected.name);
    assert_eq!(actual.secret, expected.secret);
    assert_eq!(actual.grant_types, expected.grant_types);
    assert_eq!(actual.scopes, expected.scopes);
    assert_eq!(actual.audiences, expected.audiences);
    assert_eq!(actual.is_admin, expected.is_admin);
    assert_eq!(actual.can_introspect, expected.can_introspect);
    assert_eq!(actual.disabled, expected.disabled);
    assert_eq!(actual.created_at, expected.created_at);
    assert_eq!(actual.updated_at, expected.updated_at);
}

async fn clients_round_trip(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.store();
    let now = t0();
    let confidential = client("web", now);
    let admin = Client {
        name: None,
        secret: ClientSecretHash::Phc("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
        grant_types: vec![GrantType::ClientCredentials],
        scopes: Vec::new(),
        audiences: vec!["https://a.example".into(), "https://b.example".into()],
        is_admin: true,
        can_introspect: true,
        disabled: true,
        ..client("ops", now)
    };
    let public = Client {
        secret: ClientSecretHash::None,
        grant_types: vec![
            GrantType::Password,
            GrantType::RefreshToken,
            GrantType::ClientCredentials,
        ],
        ..client("spa", now)
    };
    for c in [&confidential, &admin, &public] {
        store.add_client(c).await.unwrap();
    }
    for c in [&confidential, &admin, &public] {
        assert_same(&store.find_client(&c.client_id).await.unwrap().unwrap(), c);
    }
    assert!(store.find_client("spa").await.unwrap().unwrap().is_public());
    let mut listed = store.list_clients().await.unwrap();
    listed.sort_by(|a, b| a.client_id.cmp(&b.client_id));
    assert_eq!(listed.len(), 3);
    assert_same(&listed[0], &admin);
    assert_same(&listed[1], &public);
    assert_same(&listed[2], &confidential);
}

async fn unknown_clients_are_not_found(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.store();
    assert!(store.list_clients().await.unwrap().is_empty());
    store.add_client(&client("web", t0())).await.unwrap();
    assert!(store.find_client("nobody").await.unwrap().is_none());
    assert!(store.find_client("WEB").await.unwrap().is_none());
    let updated = store
        .update_client_secret("nobody", &ClientSecretHash::Digest([9; 32]), t0())
        .await
        .unwrap();
    assert_eq!(updated, Update::NotFound);
    let updated = store
        .set_client_disabled("nobody", true, t0())
        .await
        .unwrap();
    assert_eq!(updated, Update::NotFound);
    assert_eq!(fx.count("select count(*) from client").await, 1);
}

async fn a_taken_client_id_conflicts(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.store();
    let now = t0();
    let first = client("web", now);
    store.add_client(&first).await.unwrap();
    let second = Client {
        name: Some("impostor".into()),
        is_admin: true,
        ..client("web", now + secs(5))
    };
    let error = store.add_client(&second).await.unwrap_err();
    assert!(matches!(error, StoreError::Conflict), "{error:?}");
    assert_same(&store.find_client("web").await.unwrap().unwrap(), &first);
    assert_eq!(fx.count("select count(*) from client").await, 1);
}

async fn a_new_secret_replaces_the_old(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.store();
    let now = t0();
    store.add_client(&client("web", now)).await.unwrap();
    store.add_client(&client("other", now)).await.unwrap();
    let later = now + secs(30);
    let updated = store
        .update_client_secret("web", &ClientSecretHash::Digest([9; 32]), later)
        .await
        .unwrap();
    assert_eq!(updated, Update::Done);
    let web = store.find_client("web").await.unwrap().unwrap();
    assert_eq!(web.secret, ClientSecretHash::Digest([9; 32]));
    assert_eq!(web.updated_at, later);
    assert_eq!(web.created_at, now);
    // A digest can give way to an operator-chosen secret, and back.
    let phc = ClientSecretHash::Phc("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$bmV3".into());
    let updated = store
        .update_client_secret("web", &phc, later + secs(1))
        .await
        .unwrap();
    assert_eq!(updated, Update::Done);
    assert_eq!(store.find_client("web").await.unwrap().unwrap().secret, phc);
    // Only the named client changed.
    let other = store.find_client("other").await.unwrap().unwrap();
    assert_eq!(other.secret, ClientSecretHash::Digest([7; 32]));
    assert_eq!(other.updated_at, now);
}

async fn a_public_client_gets_no_secret(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.store();
    let now = t0();
    let public = Client {
        secret: ClientSecretHash::None,
        ..client("spa", now)
    };
    store.add_client(&public).await.unwrap();
    let updated = store
        .update_client_secret("spa", &ClientSecretHash::Digest([9; 32]), now + secs(1))
        .await
        .unwrap();
    assert_eq!(updated, Update::NotFound);
    assert_same(&store.find_client("spa").await.unwrap().unwrap(), &public);
}

async fn clients_are_disabled_and_enabled(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.store();
    let now = t0();
    store.add_client(&client("web", now)).await.unwrap();
    store.add_client(&client("other", now)).await.unwrap();
    let updated = store
        .set_client_disabled("web", true, now + secs(1))
        .await
        .unwrap();
    assert_eq!(updated, Update::Done);
    let web = store.find_client("web").await.unwrap().unwrap();
    assert!(web.disabled);
    assert_eq!(web.updated_at, now + secs(1));
    assert!(!store.find_client("other").await.unwrap().unwrap().disabled);
    // Setting the flag it already has is still a write to a known client.
    let updated = store
        .set_client_disabled("web", true, now + secs(2))
        .await
        .unwrap();
    assert_eq!(updated, Update::Done);
    let updated = store
        .set_client_disabled("web", false, now + secs(3))
        .await
        .unwrap();
    assert_eq!(updated, Update::Done);
    let web = store.find_client("web").await.unwrap().unwrap();
    assert!(!web.disabled);
    assert_eq!(web.updated_at, now + secs(3));
    assert_eq!(web.secret, ClientSecretHash::Digest([7; 32]));
}

both_backends!(
    clients_round_trip,
    unknown_clients_are_not_found,
    a_taken_client_id_conflicts,
    a_new_secret_replaces_the_old,
    a_public_client_gets_no_secret,
    clients_are_disabled_and_enabled,
);
