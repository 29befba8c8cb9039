//! Clients: registration, lookup, the secret and the disabled flag.

use tessera::model::{Client, ClientFilter, ClientSecretHash, ClientUsage, GrantType};
use tessera::store::StoreError;

use super::{Fixture, audit, client, disabling, replace, secs, t0};
use crate::both_backends;
use crate::helpers::Backend;
use tessera::store::{ClientChange, SecretRotation, Update};

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
    assert_eq!(actual.secret_created_at, expected.secret_created_at);
    assert_eq!(actual.secret_max_age, expected.secret_max_age);
    assert_eq!(actual.previous_secret, expected.previous_secret);
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
        .update_client_secret("nobody", &replace(&ClientSecretHash::Digest([9; 32])), t0())
        .await
        .unwrap();
    assert_eq!(updated, Update::NotFound);
    let updated = store
        .update_client("nobody", &disabling(true), &[], t0())
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
        .update_client_secret("web", &replace(&ClientSecretHash::Digest([9; 32])), later)
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
        .update_client_secret("web", &replace(&phc), later + secs(1))
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
        .update_client_secret(
            "spa",
            &replace(&ClientSecretHash::Digest([9; 32])),
            now + secs(1),
        )
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
        .update_client("web", &disabling(true), &[], now + secs(1))
        .await
        .unwrap();
    assert_eq!(updated, Update::Done);
    let web = store.find_client("web").await.unwrap().unwrap();
    assert!(web.disabled);
    assert_eq!(web.updated_at, now + secs(1));
    assert!(!store.find_client("other").await.unwrap().unwrap().disabled);
    // Setting the flag it already has is still a write to a known client.
    let updated = store
        .update_client("web", &disabling(true), &[], now + secs(2))
        .await
        .unwrap();
    assert_eq!(updated, Update::Done);
    let updated = store
        .update_client("web", &disabling(false), &[], now + secs(3))
        .await
        .unwrap();
    assert_eq!(updated, Update::Done);
    let web = store.find_client("web").await.unwrap().unwrap();
    assert!(!web.disabled);
    assert_eq!(web.updated_at, now + secs(3));
    assert_eq!(web.secret, ClientSecretHash::Digest([7; 32]));
}

/// The replaced secret becomes the previous one, read by the same statement; without an
/// overlap the previous one is cleared; the max age is set or kept.
async fn a_rotation_keeps_the_replaced_secret_for_its_overlap(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.store();
    let now = t0();
    store.add_client(&client("web", now)).await.unwrap();
    let later = now + secs(30);
    let new = ClientSecretHash::Digest([9; 32]);
    let rotation = SecretRotation {
        secret: &new,
        previous_expires_at: Some(later + secs(600)),
        secret_max_age: Some(std::time::Duration::from_secs(3600)),
    };
    let updated = store
        .update_client_secret("web", &rotation, later)
        .await
        .unwrap();
    assert_eq!(updated, Update::Done);
    let web = store.find_client("web").await.unwrap().unwrap();
    assert_eq!(web.secret, new);
    assert_eq!(web.secret_created_at, Some(later));
    assert_eq!(
        web.secret_max_age,
        Some(std::time::Duration::from_secs(3600))
    );
    let previous = web.previous_secret.expect("the replaced secret");
    assert_eq!(previous.secret, ClientSecretHash::Digest([7; 32]));
    assert_eq!(previous.expires_at, later + secs(600));
    // Again during the overlap: the secret just replaced is the previous one now.
    let newer = ClientSecretHash::Digest([10; 32]);
    let rotation = SecretRotation {
        secret: &newer,
        previous_expires_at: Some(later + secs(60)),
        secret_max_age: None,
    };
    store
        .update_client_secret("web", &rotation, later + secs(1))
        .await
        .unwrap();
    let web = store.find_client("web").await.unwrap().unwrap();
    assert_eq!(web.previous_secret.unwrap().secret, new);
    assert_eq!(
        web.secret_max_age,
        Some(std::time::Duration::from_secs(3600)),
        "kept"
    );
    // Without an overlap, no previous secret at all.
    store
        .update_client_secret("web", &replace(&new), later + secs(2))
        .await
        .unwrap();
    let web = store.find_client("web").await.unwrap().unwrap();
    assert!(web.previous_secret.is_none());
    assert_eq!(web.secret, new);
}

/// Use merges keeping the later time, whichever instance writes last; unknown clients are
/// skipped; a public client has no secret age.
async fn recorded_use_merges_and_filters_clients(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.store();
    let now = t0();
    store
        .add_client(&client("old", now - secs(1000)))
        .await
        .unwrap();
    store.add_client(&client("web", now)).await.unwrap();
    let public = Client {
        secret: ClientSecretHash::None,
        secret_created_at: None,
        ..client("spa", now - secs(1000))
    };
    store.add_client(&public).await.unwrap();
    let usage = |used: Option<i64>, scopes: &[(&str, i64)]| {
        let mut u = ClientUsage::default();
        if let Some(s) = used {
            u.used(now + secs(s));
        }
        for (scope, s) in scopes {
            u.issued(scope, now + secs(*s));
        }
        u
    };
    let later = [
        ("web".to_owned(), usage(Some(20), &[("read", 20)])),
        ("gone".to_owned(), usage(Some(20), &[("read", 20)])),
    ];
    store.record_client_usage(&later).await.unwrap();
    // An instance flushing older use afterwards does not move anything back.
    let earlier = [(
        "web".to_owned(),
        usage(Some(10), &[("read", 10), ("write", 10)]),
    )];
    store.record_client_usage(&earlier).await.unwrap();
    let web = store.client_usage(Some("web")).await.unwrap();
    assert_eq!(web.len(), 1);
    assert_eq!(web[0].1.last_used_at, Some(now + secs(20)));
    assert_eq!(web[0].1.scope_last_issued("read"), Some(now + secs(20)));
    assert_eq!(web[0].1.scope_last_issued("write"), Some(now + secs(10)));
    let all = store.client_usage(None).await.unwrap();
    let ids: Vec<&str> = all.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["old", "spa", "web"]);
    assert_eq!(all[0].1, ClientUsage::default());
    assert_eq!(fx.count("select count(*) from client_scope_usage").await, 2);

    let ids = |clients: Vec<Client>| -> Vec<String> {
        clients.into_iter().map(|c| c.client_id).collect()
    };
    let every = store.find_clients(&ClientFilter::default()).await.unwrap();
    assert_eq!(ids(every), ["old", "spa", "web"]);
    // Unused: last used (or created, never used) at or before the cut-off.
    let unused = ClientFilter {
        unused_since: Some(now - secs(1000)),
        ..ClientFilter::default()
    };
    assert_eq!(
        ids(store.find_clients(&unused).await.unwrap()),
        ["old", "spa"]
    );
    let unused = ClientFilter {
        unused_since: Some(now + secs(20)),
        ..ClientFilter::default()
    };
    assert_eq!(
        ids(store.find_clients(&unused).await.unwrap()),
        ["old", "spa", "web"]
    );
    let unused = ClientFilter {
        unused_since: Some(now + secs(19)),
        ..ClientFilter::default()
    };
    assert_eq!(
        ids(store.find_clients(&unused).await.unwrap()),
        ["old", "spa"]
    );
    // Old secrets: public clients have none.
    let old_secrets = ClientFilter {
        secret_created_before: Some(now - secs(1)),
        ..ClientFilter::default()
    };
    assert_eq!(
        ids(store.find_clients(&old_secrets).await.unwrap()),
        ["old"]
    );
    let both = ClientFilter {
        unused_since: Some(now),
        secret_created_before: Some(now),
    };
    assert_eq!(ids(store.find_clients(&both).await.unwrap()), ["old"]);
}

/// Instances flushing at once, each with its clients in its own order: none deadlocks or
/// fails, and every stored time is the latest any of them recorded.
async fn concurrent_flushes_converge_on_the_latest_time(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let now = t0();
    let ids = ["a", "b", "c", "d"];
    for id in ids {
        fx.store().add_client(&client(id, now)).await.unwrap();
    }
    let flushes: Vec<_> = (0..8i64)
        .map(|n| {
            let store = std::sync::Arc::clone(&fx.store);
            let mut batch: Vec<(String, ClientUsage)> = ids
                .iter()
                .map(|id| {
                    let mut used = ClientUsage::default();
                    used.used(now + secs(n));
                    used.issued("read", now + secs(10 - n));
                    (id.to_string(), used)
                })
                .collect();
            if n % 2 == 1 {
                batch.reverse();
            }
            tokio::spawn(async move { store.record_client_usage(&batch).await })
        })
        .collect();
    for flush in flushes {
        flush.await.unwrap().unwrap();
    }
    for (_, used) in fx.store().client_usage(None).await.unwrap() {
        assert_eq!(used.last_used_at, Some(now + secs(7)));
        assert_eq!(used.scope_last_issued("read"), Some(now + secs(10)));
    }
}

/// A PATCH that disables and changes the registration, with its two audit events.
fn disable_and_register(
    now: time::OffsetDateTime,
) -> (ClientChange, Vec<tessera::model::AuditEvent>) {
    let change = ClientChange {
        disabled: Some(true),
        redirect_uris: Some(vec!["https://a.example/cb".into()]),
        first_party: Some(true),
    };
    let events = vec![audit("client_updated", now), audit("client_disabled", now)];
    (change, events)
}

async fn clients_version(fx: &Fixture) -> i64 {
    fx.count("select version from change_feed where topic = 'clients'")
        .await
}

/// The whole change, its audit events and one announcement.
async fn a_client_change_is_written_whole(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.store();
    let now = t0();
    store.add_client(&client("web", now)).await.unwrap();
    let version = clients_version(&fx).await;
    let (change, events) = disable_and_register(now + secs(1));
    let updated = store
        .update_client("web", &change, &events, now + secs(1))
        .await
        .unwrap();
    assert_eq!(updated, Update::Done);
    let web = store.find_client("web").await.unwrap().unwrap();
    assert!(web.disabled);
    assert_eq!(web.redirect_uris, ["https://a.example/cb"]);
    assert!(web.first_party);
    assert_eq!(web.updated_at, now + secs(1));
    assert_eq!(web.secret, ClientSecretHash::Digest([7; 32]));
    assert_eq!(fx.count("select count(*) from audit_event").await, 2);
    assert_eq!(clients_version(&fx).await, version + 1);
    // A part not given is kept.
    let change = ClientChange {
        first_party: Some(false),
        ..ClientChange::default()
    };
    store
        .update_client("web", &change, &[], now + secs(2))
        .await
        .unwrap();
    let web = store.find_client("web").await.unwrap().unwrap();
    assert!(web.disabled);
    assert_eq!(web.redirect_uris, ["https://a.example/cb"]);
    assert!(!web.first_party);
}

/// A failure after the client row is written (the database refuses the second audit event)
/// leaves the client as it was: neither the registration
/// change nor the disabling landed, nothing recorded, nothing announced.
async fn a_client_change_that_fails_midway_changes_nothing(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.store();
    let now = t0();
    let web = client("web", now);
    store.add_client(&web).await.unwrap();
    let version = clients_version(&fx).await;
    fx.db.refuse_audit_events("client_disabled").await;
    let (change, events) = disable_and_register(now + secs(1));
    let failed = store
        .update_client("web", &change, &events, now + secs(1))
        .await;
    assert!(failed.is_err(), "{failed:?}");
    let stored = store.find_client("web").await.unwrap().unwrap();
    assert_same(&stored, &web);
    assert!(stored.redirect_uris.is_empty());
    assert!(!stored.first_party);
    assert_eq!(fx.count("select count(*) from audit_event").await, 0);
    assert_eq!(clients_version(&fx).await, version);

    // Without the fault, the same change goes through whole.
    fx.db.accept_audit_events().await;
    let updated = store
        .update_client("web", &change, &events, now + secs(1))
        .await
        .unwrap();
    assert_eq!(updated, Update::Done);
    let stored = store.find_client("web").await.unwrap().unwrap();
    assert!(stored.disabled && stored.first_party);
    assert_eq!(fx.count("select count(*) from audit_event").await, 2);
}

/// Disabling the last enabled admin is refused with the rest of the change.
async fn the_last_admin_is_not_disabled_with_a_registration_change(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.store();
    let now = t0();
    let admin = Client {
        is_admin: true,
        ..client("root", now)
    };
    store.add_client(&admin).await.unwrap();
    let (change, events) = disable_and_register(now + secs(1));
    let refused = store
        .update_client("root", &change, &events, now + secs(1))
        .await
        .unwrap_err();
    assert!(matches!(refused, StoreError::LastAdmin), "{refused:?}");
    let stored = store.find_client("root").await.unwrap().unwrap();
    assert_same(&stored, &admin);
    assert!(stored.redirect_uris.is_empty());
    assert_eq!(fx.count("select count(*) from audit_event").await, 0);
}

both_backends!(
    concurrent_flushes_converge_on_the_latest_time,
    a_rotation_keeps_the_replaced_secret_for_its_overlap,
    recorded_use_merges_and_filters_clients,
    clients_round_trip,
    unknown_clients_are_not_found,
    a_taken_client_id_conflicts,
    a_new_secret_replaces_the_old,
    a_public_client_gets_no_secret,
    clients_are_disabled_and_enabled,
    a_client_change_is_written_whole,
    a_client_change_that_fails_midway_changes_nothing,
    the_last_admin_is_not_disabled_with_a_registration_change,
);
