//! Refresh rotations sharing a transaction (group commit on PostgreSQL): each request gets its
//! own outcome. The batch window is held open (`refresh_batch_wait_us`) until the batch has
//! exactly the requests a test sends (`refresh_batch_size`), so every batch is known. SQLite
//! rotates one at a time, and must answer the same.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::both_backends;
use crate::helpers::{Backend, TestApp, TestDb, assert_error, eventually};

/// Long enough that only a full batch starts it.
const HELD_OPEN_US: &str = "10000000";

/// An instance whose batches are exactly `size` rotations.
async fn batching_app(db: Arc<TestDb>, size: usize, grace: &str) -> Arc<TestApp> {
    let size = size.to_string();
    Arc::new(
        TestApp::spawn_on(db, |s| {
            s.set("refresh_batch_size", size)
                .set("refresh_batch_wait_us", HELD_OPEN_US)
                .set("refresh_reuse_grace", grace)
        })
        .await,
    )
}

type Client = (String, String);

/// `n` sessions of one user; their refresh tokens.
async fn logins(app: &TestApp, n: usize) -> (Client, Vec<String>) {
    let (id, secret) = app.standard_client().await;
    app.create_user("nora", "nora's password").await;
    let mut tokens = Vec::new();
    for _ in 0..n {
        let body: Value = app
            .token(
                Some((&id, &secret)),
                &[
                    ("grant_type", "password"),
                    ("username", "nora"),
                    ("password", "nora's password"),
                ],
            )
            .await
            .json()
            .await
            .unwrap();
        tokens.push(body["refresh_token"].as_str().unwrap().to_owned());
    }
    ((id, secret), tokens)
}

/// The session a refresh token names (its first 16 bytes after the prefix).
fn session_of(token: &str) -> String {
    tessera::domain::refresh::parse_refresh_token(token)
        .unwrap()
        .0
        .to_string()
}

/// Refreshes every token at once (on `apps[i % apps.len()]`): the answers, in order.
async fn refresh_all(apps: &[Arc<TestApp>], client: &Client, tokens: &[&str]) -> Vec<(u16, Value)> {
    let mut tasks = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        let (app, client, token) = (
            Arc::clone(&apps[i % apps.len()]),
            client.clone(),
            (*token).to_owned(),
        );
        tasks.push(tokio::spawn(async move {
            let response = app
                .token(
                    Some((&client.0, &client.1)),
                    &[("grant_type", "refresh_token"), ("refresh_token", &token)],
                )
                .await;
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }));
    }
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    answers
}

fn successor(answer: &(u16, Value)) -> &str {
    assert_eq!(answer.0, 200, "{}", answer.1);
    answer.1["refresh_token"].as_str().unwrap()
}

async fn count(db: &TestDb, sql: &str) -> i64 {
    db.scalar(sql).await
}

async fn live_tokens(db: &TestDb, session: &str) -> i64 {
    count(db, &format!("select count(*) from refresh_token where session_id = '{session}' and consumed_at is null and revoked_at is null")).await
}

async fn events(db: &TestDb, session: &str, event_type: &str) -> i64 {
    count(db, &format!("select count(*) from audit_event where session_id = '{session}' and event_type = '{event_type}'")).await
}

async fn session_revoked(db: &TestDb, session: &str) -> bool {
    count(
        db,
        &format!(
            "select count(*) from session where session_id = '{session}' and revoked_at is not null"
        ),
    )
    .await
        == 1
}

/// The same token twice in one batch: one rotation, and the other request gets the same
/// successor (the retry window), with one audit event.
async fn the_same_token_twice_in_one_batch(backend: Backend) {
    let db = Arc::new(TestDb::new(backend).await);
    let app = batching_app(db, 2, "10").await;
    let (client, tokens) = logins(&app, 1).await;
    let session = session_of(&tokens[0]);
    let answers = refresh_all(&[Arc::clone(&app)], &client, &[&tokens[0], &tokens[0]]).await;
    assert_eq!(successor(&answers[0]), successor(&answers[1]));
    assert_eq!(live_tokens(&app.db, &session).await, 1);
    assert_eq!(events(&app.db, &session, "refresh").await, 1);
    assert!(!session_revoked(&app.db, &session).await);
}

fn assert_error_body(answer: &(u16, Value), status: u16, code: &str) {
    assert_eq!(answer.0, status, "{}", answer.1);
    assert_eq!(answer.1["error"], code, "{}", answer.1);
}

/// Sends one refresh without waiting for its answer.
fn spawn_refresh(
    app: &Arc<TestApp>,
    client: &Client,
    token: &str,
) -> tokio::task::JoinHandle<(u16, Value)> {
    let (app, client, token) = (Arc::clone(app), client.clone(), token.to_owned());
    tokio::spawn(async move {
        let answers = refresh_all(&[app], &client, &[&token]).await;
        answers.into_iter().next().unwrap()
    })
}

/// A batch holding a session revoked after its request was judged: only that request fails,
/// its batch-mates rotate. The revocation comes while the first two requests wait for the
/// third (had it come before the second request's lookup, that request would have been refused
/// at the lookup instead: the same answers, so the test holds either way).
async fn a_revoked_session_fails_alone(backend: Backend) {
    let db = Arc::new(TestDb::new(backend).await);
    let app = batching_app(db, 3, "10").await;
    let (client, tokens) = logins(&app, 3).await;
    let first = spawn_refresh(&app, &client, &tokens[0]);
    let second = spawn_refresh(&app, &client, &tokens[1]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let revoke = app
        .request(reqwest::Method::POST, "/revoke")
        .basic_auth(&client.0, Some(&client.1))
        .form(&[("token", tokens[1].as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 200);
    let third = spawn_refresh(&app, &client, &tokens[2]);
    successor(&first.await.unwrap());
    let second = second.await.unwrap();
    successor(&third.await.unwrap());
    // On SQLite (no batch) the second request may have rotated before the revocation, which
    // then ended the session with its successor; on PostgreSQL it waited for the third.
    if backend == Backend::Postgres {
        assert_error_body(&second, 400, "invalid_grant");
    }
    assert_eq!(live_tokens(&app.db, &session_of(&tokens[1])).await, 0);
    for (i, token) in tokens.iter().enumerate() {
        let session = session_of(token);
        if i != 1 {
            assert_eq!(live_tokens(&app.db, &session).await, 1);
            assert_eq!(events(&app.db, &session, "refresh").await, 1);
        }
    }
}

/// A batch where one session is reuse (its token twice, no retry window, beside another
/// session's rotation): exactly that session is revoked, with one reuse event, and the
/// batch-mate rotates.
async fn reuse_in_a_batch_revokes_only_its_session(backend: Backend) {
    let db = Arc::new(TestDb::new(backend).await);
    let app = batching_app(db, 3, "0").await;
    let (client, tokens) = logins(&app, 2).await;
    let answers = refresh_all(
        &[Arc::clone(&app)],
        &client,
        &[&tokens[0], &tokens[1], &tokens[0]],
    )
    .await;
    // One of the two requests of the first session rotated, the other was reuse.
    let statuses = [answers[0].0, answers[2].0];
    assert!(
        statuses.contains(&200) && statuses.contains(&400),
        "{answers:?}"
    );
    let reuse = if answers[0].0 == 400 {
        &answers[0]
    } else {
        &answers[2]
    };
    assert_error_body(reuse, 400, "invalid_grant");
    successor(&answers[1]);
    let (reused, bystander) = (session_of(&tokens[0]), session_of(&tokens[1]));
    assert!(session_revoked(&app.db, &reused).await);
    assert_eq!(live_tokens(&app.db, &reused).await, 0);
    assert_eq!(
        events(&app.db, &reused, "refresh_token_reuse_detected").await,
        1
    );
    assert_eq!(events(&app.db, &reused, "refresh").await, 1);
    assert!(!session_revoked(&app.db, &bystander).await);
    assert_eq!(live_tokens(&app.db, &bystander).await, 1);
    assert_eq!(events(&app.db, &bystander, "refresh").await, 1);
    assert_eq!(
        events(&app.db, &bystander, "refresh_token_reuse_detected").await,
        0
    );
    // The reused session's revocation is in force for its access tokens; the bystander's
    // access token stays active.
    let winner = if answers[0].0 == 200 {
        &answers[0]
    } else {
        &answers[2]
    };
    let revoked = winner.1["access_token"].as_str().unwrap();
    // Instances pick revocations up from the change feed (at most SYNC_INTERVAL later).
    assert!(
        eventually(Duration::from_secs(10), || async {
            !introspect(&app, revoked).await
        })
        .await
    );
    assert!(introspect(&app, answers[1].1["access_token"].as_str().unwrap()).await);
}

async fn introspect(app: &TestApp, token: &str) -> bool {
    let body: Value = app
        .admin(reqwest::Method::POST, "/introspect")
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["active"].as_bool().unwrap()
}

both_backends!(
    the_same_token_twice_in_one_batch,
    a_revoked_session_fails_alone,
    reuse_in_a_batch_revokes_only_its_session,
);

/// One session refreshed through two instances on one database, each in a batch with another
/// session's rotation: one rotation of it in all, the same successor to both requests, and
/// the batch-mates rotate. (SQLite serves one instance.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_session_from_two_instances() {
    let db = Arc::new(TestDb::new(Backend::Postgres).await);
    let one = batching_app(Arc::clone(&db), 2, "10").await;
    let two = batching_app(db, 2, "10").await;
    let (client, tokens) = logins(&one, 3).await;
    // Requests alternate between the instances: each gets the shared token and one of its own.
    let answers = refresh_all(
        &[Arc::clone(&one), Arc::clone(&two)],
        &client,
        &[&tokens[0], &tokens[0], &tokens[1], &tokens[2]],
    )
    .await;
    assert_eq!(successor(&answers[0]), successor(&answers[1]));
    successor(&answers[2]);
    successor(&answers[3]);
    for token in &tokens {
        let session = session_of(token);
        assert_eq!(live_tokens(&one.db, &session).await, 1);
        assert_eq!(events(&one.db, &session, "refresh").await, 1);
        assert!(!session_revoked(&one.db, &session).await);
    }
    let unused = assert_error(
        one.token(
            Some((&client.0, &client.1)),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", "tsr_nothing"),
            ],
        )
        .await,
        400,
        "invalid_grant",
    )
    .await;
    assert!(unused["error_description"].is_string());
}
