//! Browser sessions and authorization codes: a browser session is found (and touched) only
//! while live; a code is redeemed once, in the transaction that stores its session.

use std::sync::Arc;

use tessera::model::{AuthorizationCode, BrowserSession, Client, RevocationKind, User};
use tessera::store::CodeRedeemed;
use time::OffsetDateTime;

use super::{Fixture, audit, secs, session, t0, token};
use crate::both_backends;
use crate::helpers::Backend;

fn browser(user: &User, at: OffsetDateTime) -> BrowserSession {
    BrowserSession {
        browser_session_id: uuid::Uuid::new_v4(),
        user_id: user.user_id,
        source_addr: Some("192.0.2.7".into()),
        created_at: at,
        expires_at: at + secs(3600),
        last_seen_at: at,
    }
}

fn code(client: &Client, user: &User, n: u8, at: OffsetDateTime) -> AuthorizationCode {
    AuthorizationCode {
        code_digest: [n; 32],
        client_id: client.client_id.clone(),
        user_id: user.user_id,
        browser_session_id: None,
        redirect_uri: "https://app.example.com/cb".into(),
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        scope: "read write".into(),
        created_at: at,
        expires_at: at + secs(60),
        used_at: None,
        session_id: None,
    }
}

/// Whether the browser session of `digest` is live at `now`, idle since `idle_since` at most.
async fn live(fx: &Fixture, digest: u8, now: OffsetDateTime, idle_since: OffsetDateTime) -> bool {
    fx.store()
        .touch_browser_session(&[digest; 32], now, idle_since)
        .await
        .unwrap()
        .is_some()
}

async fn a_browser_session_is_found_and_touched_while_live(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (_, alice) = fx.principal("web", "alice").await;
    let now = t0();
    let started = browser(&alice, now);
    fx.store()
        .add_browser_session(&started, &[1; 32])
        .await
        .unwrap();
    let store = fx.store();
    // Seen 10 minutes later, within a 15-minute idle lifetime: found, and the idle clock moves.
    let later = now + secs(600);
    let found = store
        .touch_browser_session(&[1; 32], later, later - secs(900))
        .await
        .unwrap()
        .expect("live");
    assert_eq!(found.browser_session_id, started.browser_session_id);
    assert_eq!(found.user_id, alice.user_id);
    assert_eq!(found.last_seen_at, later);
    assert_eq!(found.expires_at, started.expires_at);
    assert_eq!(found.source_addr.as_deref(), Some("192.0.2.7"));
    // Idle since the touch: 20 minutes later with a 15-minute idle lifetime, gone.
    let idle = later + secs(1200);
    assert!(!live(&fx, 1, idle, idle - secs(900)).await);
    // Within the idle lifetime again (counted from the last touch), but past the absolute one.
    let past = now + secs(3600);
    assert!(!live(&fx, 1, past, past - secs(3600)).await);
    // Another digest is nobody's.
    assert!(!live(&fx, 2, later, now).await);
}

async fn an_ended_browser_session_stays_ended(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (_, alice) = fx.principal("web", "alice").await;
    let now = t0();
    fx.store()
        .add_browser_session(&browser(&alice, now), &[1; 32])
        .await
        .unwrap();
    let store = fx.store();
    assert!(store.end_browser_session(&[1; 32], now).await.unwrap());
    assert!(!store.end_browser_session(&[1; 32], now).await.unwrap());
    assert!(!store.end_browser_session(&[9; 32], now).await.unwrap());
    assert!(!live(&fx, 1, now + secs(1), now).await);
}

async fn a_subject_revocation_and_disabling_end_the_users_browser_sessions(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (_, alice) = fx.principal("web", "alice").await;
    let bob = super::user("bob", t0());
    fx.store().add_user(&bob, &[]).await.unwrap();
    let now = t0();
    let store = fx.store();
    for (user, digest) in [(&alice, 1), (&alice, 2), (&bob, 3)] {
        store
            .add_browser_session(&browser(user, now), &[digest; 32])
            .await
            .unwrap();
    }
    let idle_since = now - secs(900);
    for digest in [1, 2, 3] {
        assert!(live(&fx, digest, now, idle_since).await);
    }
    let alice_id = alice.user_id.to_string();
    let at = now + secs(5);
    store
        .revoke_principal(
            RevocationKind::Subject,
            &alice_id,
            false,
            at,
            at + secs(900),
            &audit("subject_revoked", at),
        )
        .await
        .unwrap();
    for digest in [1, 2] {
        assert!(!live(&fx, digest, at, idle_since).await);
    }
    assert!(
        live(&fx, 3, at, idle_since).await,
        "another user's session lives on"
    );
    assert_eq!(
        fx.count(&format!(
            "select count(*) from browser_session where user_id = '{alice_id}' and ended_at is not null"
        ))
        .await,
        2
    );
    // A disabled user's sessions are dead at once, whatever ended them.
    let bob_id = bob.user_id.to_string();
    store
        .revoke_principal(
            RevocationKind::Subject,
            &bob_id,
            true,
            at,
            at + secs(900),
            &audit("user_disabled", at),
        )
        .await
        .unwrap();
    assert!(!live(&fx, 3, at, idle_since).await);
}

async fn a_code_is_stored_and_found_by_digest(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (client, alice) = fx.principal("web", "alice").await;
    let now = t0();
    let store = fx.store();
    let signed_in = browser(&alice, now);
    store
        .add_browser_session(&signed_in, &[1; 32])
        .await
        .unwrap();
    let issued = AuthorizationCode {
        browser_session_id: Some(signed_in.browser_session_id),
        ..code(&client, &alice, 7, now)
    };
    store.add_authorization_code(&issued).await.unwrap();
    let found = store
        .find_authorization_code(&[7; 32])
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(found.code_digest, [7; 32]);
    assert_eq!(found.client_id, "web");
    assert_eq!(found.user_id, alice.user_id);
    assert_eq!(found.browser_session_id, Some(signed_in.browser_session_id));
    assert_eq!(found.redirect_uri, "https://app.example.com/cb");
    assert_eq!(found.code_challenge, issued.code_challenge);
    assert_eq!(found.scope, "read write");
    assert_eq!((found.created_at, found.expires_at), (now, now + secs(60)));
    assert_eq!((found.used_at, found.session_id), (None, None));
    assert!(
        store
            .find_authorization_code(&[8; 32])
            .await
            .unwrap()
            .is_none()
    );
    // A digest is a primary key: the same code twice is refused.
    assert!(store.add_authorization_code(&issued).await.is_err());
}

async fn a_code_is_redeemed_once_with_its_session(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (client, alice) = fx.principal("web", "alice").await;
    let now = t0();
    let store = fx.store();
    store
        .add_authorization_code(&code(&client, &alice, 7, now))
        .await
        .unwrap();
    let at = now + secs(5);
    let login = session(&client, &alice, at);
    let redeemed = store
        .redeem_authorization_code(&[7; 32], &login, Some(&token(&login, 1, at)), at)
        .await
        .unwrap();
    assert_eq!(redeemed, CodeRedeemed::Redeemed);
    let used = store
        .find_authorization_code(&[7; 32])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(used.used_at, Some(at));
    assert_eq!(used.session_id, Some(login.session_id));
    assert!(
        store
            .find_refresh_token(login.session_id, &[1; 32])
            .await
            .unwrap()
            .is_some()
    );
    // Again, with another session: nothing changes.
    let second = session(&client, &alice, at);
    let again = store
        .redeem_authorization_code(&[7; 32], &second, Some(&token(&second, 2, at)), at)
        .await
        .unwrap();
    assert_eq!(again, CodeRedeemed::NotLive);
    assert_eq!(fx.count("select count(*) from session").await, 1);
    assert_eq!(fx.count("select count(*) from refresh_token").await, 1);
    let still = store
        .find_authorization_code(&[7; 32])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(still.session_id, Some(login.session_id));
    // An unknown code redeems nothing either.
    let third = session(&client, &alice, at);
    assert_eq!(
        store
            .redeem_authorization_code(&[9; 32], &third, None, at)
            .await
            .unwrap(),
        CodeRedeemed::NotLive
    );
}

async fn an_expired_code_or_a_disabled_user_redeems_nothing(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (client, alice) = fx.principal("web", "alice").await;
    let now = t0();
    let store = fx.store();
    store
        .add_authorization_code(&code(&client, &alice, 7, now))
        .await
        .unwrap();
    // At the expiry instant it is expired already.
    let at = now + secs(60);
    let login = session(&client, &alice, at);
    assert_eq!(
        store
            .redeem_authorization_code(&[7; 32], &login, Some(&token(&login, 1, at)), at)
            .await
            .unwrap(),
        CodeRedeemed::NotLive
    );
    store
        .add_authorization_code(&code(&client, &alice, 8, now))
        .await
        .unwrap();
    fx.db
        .execute(&format!(
            "update user_account set disabled = true where user_id = '{}'",
            alice.user_id
        ))
        .await;
    let early = now + secs(1);
    let login = session(&client, &alice, early);
    assert_eq!(
        store
            .redeem_authorization_code(&[8; 32], &login, None, early)
            .await
            .unwrap(),
        CodeRedeemed::UserDisabled
    );
    assert_eq!(fx.count("select count(*) from session").await, 0);
    assert_eq!(
        fx.count("select count(*) from authorization_code where used_at is not null")
            .await,
        0
    );
}

/// Of many concurrent redemptions of one code, exactly one stores its session.
async fn concurrent_redemptions_of_one_code_redeem_once(backend: Backend) {
    let fx = Arc::new(Fixture::new(backend).await);
    let (client, alice) = fx.principal("web", "alice").await;
    let now = t0();
    for round in 0..5u8 {
        fx.store()
            .add_authorization_code(&code(&client, &alice, round, now))
            .await
            .unwrap();
        let barrier = Arc::new(tokio::sync::Barrier::new(6));
        let mut tasks = Vec::new();
        for n in 0..6u8 {
            let (fx, client, alice, barrier) = (
                Arc::clone(&fx),
                client.clone(),
                alice.clone(),
                Arc::clone(&barrier),
            );
            tasks.push(tokio::spawn(async move {
                let at = now + secs(1);
                let login = session(&client, &alice, at);
                let first = token(&login, 100 + round * 10 + n, at);
                barrier.wait().await;
                fx.store()
                    .redeem_authorization_code(&[round; 32], &login, Some(&first), at)
                    .await
                    .unwrap()
            }));
        }
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(task.await.unwrap());
        }
        let redeemed = outcomes
            .iter()
            .filter(|o| **o == CodeRedeemed::Redeemed)
            .count();
        assert_eq!(redeemed, 1, "round {round}: {outcomes:?}");
        assert!(outcomes.iter().all(|o| *o != CodeRedeemed::UserDisabled));
    }
    assert_eq!(fx.count("select count(*) from session").await, 5);
    assert_eq!(fx.count("select count(*) from refresh_token").await, 5);
}

async fn purge_drops_old_codes_and_ended_browser_sessions(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (client, alice) = fx.principal("web", "alice").await;
    let now = t0();
    let store = fx.store();
    store
        .add_authorization_code(&code(&client, &alice, 1, now - secs(2 * 86_400)))
        .await
        .unwrap();
    store
        .add_authorization_code(&code(&client, &alice, 2, now - secs(600)))
        .await
        .unwrap();
    // Past its absolute expiry; ended two days ago; ended just now; live.
    store
        .add_browser_session(&browser(&alice, now - secs(7200)), &[1; 32])
        .await
        .unwrap();
    for digest in [2, 3, 4] {
        store
            .add_browser_session(&browser(&alice, now - secs(60)), &[digest; 32])
            .await
            .unwrap();
    }
    store
        .end_browser_session(&[2; 32], now - secs(2 * 86_400))
        .await
        .unwrap();
    store.end_browser_session(&[3; 32], now).await.unwrap();
    store.purge_batch(now, now, 100).await.unwrap();
    assert_eq!(
        fx.count("select count(*) from authorization_code").await,
        1,
        "the code a day past its expiry goes; a recent one stays as evidence of reuse"
    );
    assert!(
        store
            .find_authorization_code(&[2; 32])
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(fx.count("select count(*) from browser_session").await, 2);
    assert!(live(&fx, 4, now, now - secs(600)).await);
}

both_backends!(
    a_browser_session_is_found_and_touched_while_live,
    an_ended_browser_session_stays_ended,
    a_subject_revocation_and_disabling_end_the_users_browser_sessions,
    a_code_is_stored_and_found_by_digest,
    a_code_is_redeemed_once_with_its_session,
    an_expired_code_or_a_disabled_user_redeems_nothing,
    concurrent_redemptions_of_one_code_redeem_once,
    purge_drops_old_codes_and_ended_browser_sessions,
);
