//! Storage foundations on both backends: migrations apply once, re-apply as no-ops, and survive
//! several instances starting at once.

use std::sync::Arc;

use tessera::config::DatabaseUrl;
use tessera::store;

use crate::both_backends;
use crate::helpers::{Backend, TestApp, TestDb, settings};

const TABLES: &[&str] = &[
    "client",
    "user_account",
    "signing_key",
    "master_key_check",
    "session",
    "refresh_token",
    "revocation",
    "audit_event",
    "login_throttle",
    "change_feed",
    "browser_session",
    "authorization_code",
];

async fn connect(db: &TestDb) -> Arc<dyn store::Store> {
    let config = settings(db).validate().unwrap();
    store::connect(&config.database).await.unwrap()
}

/// Counts rows through a raw connection, outside the store under test.
async fn count(db: &TestDb, sql: &str) -> i64 {
    let config = settings(db).validate().unwrap();
    match &config.database.url {
        DatabaseUrl::Postgres(options) => {
            let pool = sqlx::PgPool::connect_with((**options).clone())
                .await
                .unwrap();
            sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap()
        }
        DatabaseUrl::Sqlite { options, .. } => {
            let pool = sqlx::SqlitePool::connect_with((**options).clone())
                .await
                .unwrap();
            sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap()
        }
    }
}

async fn migrations_are_idempotent(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = connect(&db).await;
    store.migrate().await.unwrap();
    let applied = count(&db, "select count(*) from _sqlx_migrations").await;
    assert!(applied >= 1);
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    assert_eq!(
        count(&db, "select count(*) from _sqlx_migrations").await,
        applied
    );
    store.ping().await.unwrap();
    store.close().await;
}

async fn the_schema_covers_the_whole_contract(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = connect(&db).await;
    store.migrate().await.unwrap();
    for table in TABLES {
        // Every table exists and starts empty, except the change feed's one row per topic.
        let rows = count(&db, &format!("select count(*) from {table}")).await;
        let expected = if *table == "change_feed" { 4 } else { 0 };
        assert_eq!(rows, expected, "{table}");
    }
    store.close().await;
}

async fn a_restarted_server_finds_its_schema_in_place(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let db = Arc::clone(&app.db);
    app.stop().await;
    let again = TestApp::spawn_on(db, |s| s).await;
    let response = again.get("/readyz").send().await.unwrap();
    assert_eq!(response.status(), 200);
}

async fn a_server_without_migrations_needs_a_migrated_database(backend: Backend) {
    let db = Arc::new(TestDb::new(backend).await);
    // Unmigrated: start-up refuses with an error (it does not create the schema itself)...
    let config = settings(&db).set("migrate", "false").validate().unwrap();
    let clock = Arc::new(tessera::clock::MockClock::starting_now());
    assert!(tessera::server::Server::build(config, clock).await.is_err());
    let probe = match backend {
        Backend::Postgres => {
            "select count(*) from information_schema.tables where table_name = 'client'"
        }
        Backend::Sqlite => "select count(*) from sqlite_master where name = 'client'",
    };
    assert_eq!(count(&db, probe).await, 0);
    // ...and once `tessera migrate` has run, it serves.
    connect(&db).await.migrate().await.unwrap();
    let app = TestApp::spawn_on(Arc::clone(&db), |s| s.set("migrate", "false")).await;
    assert_eq!(app.get("/readyz").send().await.unwrap().status(), 200);
}

both_backends!(
    migrations_are_idempotent,
    the_schema_covers_the_whole_contract,
    a_restarted_server_finds_its_schema_in_place,
    a_server_without_migrations_needs_a_migrated_database,
);

/// Several instances starting together on one PostgreSQL database take turns migrating.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_migrations_on_postgres_agree() {
    let db = TestDb::new(Backend::Postgres).await;
    let stores: Vec<_> = futures_join(&db, 4).await;
    let results = {
        let mut handles = Vec::new();
        for store in &stores {
            let store = Arc::clone(store);
            handles.push(tokio::spawn(async move { store.migrate().await }));
        }
        let mut results = Vec::new();
        for handle in handles {
            results.push(handle.await.unwrap());
        }
        results
    };
    for result in results {
        result.unwrap();
    }
    let applied = count(&db, "select count(*) from _sqlx_migrations").await;
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .unwrap()
        .count() as i64;
    assert_eq!(applied, files);
    for store in stores {
        store.close().await;
    }
}

async fn futures_join(db: &TestDb, n: usize) -> Vec<Arc<dyn store::Store>> {
    let mut stores = Vec::new();
    for _ in 0..n {
        stores.push(connect(db).await);
    }
    stores
}

#[test]
fn both_backends_have_the_same_migrations() {
    let names = |dir: &str| {
        let mut names: Vec<String> =
            std::fs::read_dir(format!("{}/migrations/{dir}", env!("CARGO_MANIFEST_DIR")))
                .unwrap()
                .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
        names.sort();
        names
    };
    assert_eq!(names("postgres"), names("sqlite"));
}
