//! Roles: writing, deleting and listing roles, the roles a user holds, and the one revocation
//! entry a lost scope records.

use tessera::model::{HeldRoles, RevocationKind, Role};
use tessera::store::{RoleWrite, StoreError};

use super::{Fixture, audit, secs, t0, user};
use crate::both_backends;
use crate::helpers::Backend;

fn role(name: &str, scopes: &[&str]) -> Role {
    Role {
        name: name.into(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        description: None,
        created_at: t0(),
        updated_at: t0(),
    }
}

fn names(scopes: &[&str]) -> Vec<String> {
    scopes.iter().map(|s| s.to_string()).collect()
}

/// The scope revocations recorded, as (kind, value, scopes), in id order.
async fn scope_revocations(fx: &Fixture) -> Vec<(RevocationKind, String, String)> {
    fx.store()
        .list_revocations(0, t0(), 1_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| matches!(r.kind, RevocationKind::Role | RevocationKind::SubjectScope))
        .map(|r| (r.kind, r.value, r.scopes.unwrap_or_default()))
        .collect()
}

async fn a_role_write_reports_what_was_lost_and_records_one_entry(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.store();
    let until = t0() + secs(600);
    let created = store
        .put_role(
            &role("editor", &["read", "write"]),
            t0(),
            until,
            &audit("role_changed", t0()),
        )
        .await
        .unwrap();
    assert_eq!(
        created,
        RoleWrite {
            created: true,
            lost: vec![],
            held: false
        }
    );
    let holder = user("alice", t0());
    store.add_user(&holder, &names(&["editor"])).await.unwrap();

    // Gaining writes no revocation.
    let later = t0() + secs(1);
    let grown = store
        .put_role(
            &role("editor", &["read", "write", "admin"]),
            later,
            until,
            &audit("role_changed", later),
        )
        .await
        .unwrap();
    assert_eq!(grown.lost, Vec::<String>::new());
    assert!(!grown.created && grown.held);
    assert!(scope_revocations(&fx).await.is_empty());

    let shrunk = store
        .put_role(
            &role("editor", &["read"]),
            later,
            until,
            &audit("role_changed", later),
        )
        .await
        .unwrap();
    assert_eq!(shrunk.lost, names(&["admin", "write"]));
    assert_eq!(
        scope_revocations(&fx).await,
        [(RevocationKind::Role, "editor".into(), "admin write".into())]
    );
    let stored = store.find_role("editor").await.unwrap().unwrap();
    assert_eq!(stored.scopes, names(&["read"]));
    // Replaced: the first write's creation time stays.
    assert_eq!(stored.updated_at, later);
    assert!(stored.created_at < later);
    // The audit event says what was there before and what went.
    let events = fx
        .count("select count(*) from audit_event where event_type = 'role_changed'")
        .await;
    assert_eq!(events, 3);

    // Deleting: every scope is lost, the holders lose the role.
    let deleted = store
        .delete_role("editor", later, until, &audit("role_changed", later))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(deleted.lost, names(&["read"]));
    assert!(deleted.held);
    assert!(store.find_role("editor").await.unwrap().is_none());
    assert_eq!(
        store.held_roles(holder.user_id).await.unwrap(),
        HeldRoles::default()
    );
    assert_eq!(scope_revocations(&fx).await.len(), 2);
    assert!(
        store
            .delete_role("editor", later, until, &audit("role_changed", later))
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.list_roles().await.unwrap().is_empty());
}

async fn a_users_roles_are_replaced_whole_and_unknown_roles_change_nothing(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.store();
    let until = t0() + secs(600);
    for (name, scopes) in [
        ("editor", &["read", "write"][..]),
        ("viewer", &["read"][..]),
    ] {
        store
            .put_role(
                &role(name, scopes),
                t0(),
                until,
                &audit("role_changed", t0()),
            )
            .await
            .unwrap();
    }
    let alice = user("alice", t0());
    // An unknown role: no user at all.
    let error = store
        .add_user(&alice, &names(&["viewer", "ghost"]))
        .await
        .unwrap_err();
    assert!(
        matches!(error, StoreError::UnknownRole(ref r) if r == "ghost"),
        "{error:?}"
    );
    assert!(store.find_user(alice.user_id).await.unwrap().is_none());

    store
        .add_user(&alice, &names(&["viewer", "editor"]))
        .await
        .unwrap();
    let held = store.held_roles(alice.user_id).await.unwrap();
    assert_eq!(held.names().collect::<Vec<_>>(), ["editor", "viewer"]);
    assert!(held.holds("write") && held.holds("read"));

    let set = |roles: &'static [&'static str]| {
        let event = audit("user_roles_changed", t0());
        async move {
            store
                .set_user_roles(alice.user_id, &names(roles), t0(), until, &event)
                .await
        }
    };
    // Losing editor but keeping viewer: only `write` is lost.
    assert_eq!(set(&["viewer"]).await.unwrap(), Some(names(&["write"])));
    assert_eq!(
        scope_revocations(&fx).await,
        [(
            RevocationKind::SubjectScope,
            alice.user_id.to_string(),
            "write".into()
        )]
    );
    // An unknown role: the set stays as it was, nothing recorded.
    assert!(matches!(
        set(&["editor", "ghost"]).await,
        Err(StoreError::UnknownRole(_))
    ));
    let held = store.held_roles(alice.user_id).await.unwrap();
    assert_eq!(held.names().collect::<Vec<_>>(), ["viewer"]);
    assert_eq!(scope_revocations(&fx).await.len(), 1);
    // Gaining: nothing recorded.
    assert_eq!(set(&["viewer", "editor"]).await.unwrap(), Some(vec![]));
    assert_eq!(set(&[]).await.unwrap(), Some(names(&["read", "write"])));
    assert_eq!(scope_revocations(&fx).await.len(), 2);
    // An unknown user.
    let ghost = uuid::Uuid::new_v4();
    let event = audit("user_roles_changed", t0());
    assert_eq!(
        store
            .set_user_roles(ghost, &[], t0(), until, &event)
            .await
            .unwrap(),
        None
    );
}

async fn a_renewed_cutoff_is_one_more_entry_announced(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let store = fx.store();
    let before = store.change_versions().await.unwrap();
    store
        .renew_scope_cutoff(
            RevocationKind::Role,
            "editor",
            &names(&["write"]),
            t0(),
            t0() + secs(600),
        )
        .await
        .unwrap();
    assert_eq!(
        scope_revocations(&fx).await,
        [(RevocationKind::Role, "editor".into(), "write".into())]
    );
    assert_ne!(store.change_versions().await.unwrap(), before);
}

both_backends!(
    a_role_write_reports_what_was_lost_and_records_one_entry,
    a_users_roles_are_replaced_whole_and_unknown_roles_change_nothing,
    a_renewed_cutoff_is_one_more_entry_announced,
);
