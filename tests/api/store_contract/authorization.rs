//! Browser sessions and authorization codes: a browser session is found (and touched) only
//! while live; a code is redeemed once, in the transaction that stores its session.

use std::sync::Arc;

use tessera::model::{AuthorizationCode, BrowserSession, Client, RevocationKind, Session, User};
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

/// `code(client, user, n, at)`, stored.
async fn add_code(fx: &Fixture, client: &Client, user: &User, n: u8, at: OffsetDateTime) {
    fx.store()
        .add_authorization_code(&code(client, user, n, at))
        .await
        .unwrap();
}

/// The code of digest `[n; 32]`, if stored.
async fn found_code(fx: &Fixture, n: u8) -> Option<AuthorizationCode> {
    fx.store().find_authorization_code(&[n; 32]).await.unwrap()
}

/// Redeems the code `[n; 32]` at `at` with a new session of `client` and `user` and, if given,
/// its first refresh token `[first; 32]`: the outcome, and the session.
async fn redeem(
    fx: &Fixture,
    (client, user): (&Client, &User),
    n: u8,
    first: Option<u8>,
    at: OffsetDateTime,
) -> (CodeRedeemed, Session) {
    let login = session(client, user, at);
    let first = first.map(|f| token(&login, f, at));
    let outcome = fx
        .store()
        .redeem_authorization_code(&[n; 32], &login, first.as_ref(), at)
        .await
        .unwrap();
    (outcome, login)
}

/// `browser(user, at)`, stored under the cookie digest `[digest; 32]`.
async fn add_browser(fx: &Fixture, user: &User, digest: u8, at: OffsetDateTime) -> BrowserSession {
    let started = browser(user, at);
    fx.store()
        .add_browser_session(&started, &[digest; 32])
        .await
        .unwrap();
    started
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
    let started = add_browser(&fx, &alice, 1, now).await;
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
    add_browser(&fx, &alice, 1, now).await;
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
        add_browser(&fx, user, digest, now).await;
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
    let signed_in = add_browser(&fx, &alice, 1, now).await;
    let issued = AuthorizationCode {
        browser_session_id: Some(signed_in.browser_session_id),
        ..code(&client, &alice, 7, now)
    };
    store.add_authorization_code(&issued).await.unwrap();
    let found = found_code(&fx, 7).await.expect("stored");
    assert_eq!(found.code_digest, [7; 32]);
    assert_eq!(found.client_id, "web");
    assert_eq!(found.user_id, alice.user_id);
    assert_eq!(found.browser_session_id, Some(signed_in.browser_session_id));
    assert_eq!(found.redirect_uri, "https://app.example.com/cb");
    assert_eq!(found.code_challenge, issued.code_challenge);
    assert_eq!(found.scope, "read write");
    assert_eq!((found.created_at, found.expires_at), (now, now + secs(60)));
    assert_eq!((found.used_at, found.session_id), (None, None));
    assert!(found_code(&fx, 8).await.is_none());
    // A digest is a primary key: the same code twice is refused.
    assert!(store.add_authorization_code(&issued).await.is_err());
}

async fn a_code_is_redeemed_once_with_its_session(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (client, alice) = fx.principal("web", "alice").await;
    let now = t0();
    let store = fx.store();
    add_code(&fx, &client, &alice, 7, now).await;
    let at = now + secs(5);
    let (redeemed, login) = redeem(&fx, (&client, &alice), 7, Some(1), at).await;
    assert_eq!(redeemed, CodeRedeemed::Redeemed);
    let used = found_code(&fx, 7).await.unwrap();
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
    let (again, _) = redeem(&fx, (&client, &alice), 7, Some(2), at).await;
    assert_eq!(again, CodeRedeemed::NotLive);
    assert_eq!(fx.count("select count(*) from session").await, 1);
    assert_eq!(fx.count("select count(*) from refresh_token").await, 1);
    let still = found_code(&fx, 7).await.unwrap();
    assert_eq!(still.session_id, Some(login.session_id));
    // An unknown code redeems nothing either.
    let (unknown, _) = redeem(&fx, (&client, &alice), 9, None, at).await;
    assert_eq!(unknown, CodeRedeemed::NotLive);
}

async fn an_expired_code_or_a_disabled_user_redeems_nothing(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (client, alice) = fx.principal("web", "alice").await;
    let now = t0();
    add_code(&fx, &client, &alice, 7, now).await;
    // At the expiry instant it is expired already.
    let (expired, _) = redeem(&fx, (&client, &alice), 7, Some(1), now + secs(60)).await;
    assert_eq!(expired, CodeRedeemed::NotLive);
    add_code(&fx, &client, &alice, 8, now).await;
    fx.db
        .execute(&format!(
            "update user_account set disabled = true where user_id = '{}'",
            alice.user_id
        ))
        .await;
    let (disabled, _) = redeem(&fx, (&client, &alice), 8, None, now + secs(1)).await;
    assert_eq!(disabled, CodeRedeemed::UserDisabled);
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
        add_code(&fx, &client, &alice, round, now).await;
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
                barrier.wait().await;
                let first = Some(100 + round * 10 + n);
                redeem(&fx, (&client, &alice), round, first, now + secs(1))
                    .await
                    .0
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
    add_code(&fx, &client, &alice, 1, now - secs(2 * 86_400)).await;
    add_code(&fx, &client, &alice, 2, now - secs(600)).await;
    // Past its absolute expiry; ended two days ago; ended just now; live.
    add_browser(&fx, &alice, 1, now - secs(7200)).await;
    for digest in [2, 3, 4] {
        add_browser(&fx, &alice, digest, now - secs(60)).await;
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
    assert!(found_code(&fx, 2).await.is_some());
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
