//! The test harness: the real app on 127.0.0.1:0 against a fresh PostgreSQL database (created
//! and dropped here) or a fresh SQLite file, with a movable clock.

// Helpers serve the whole suite; a helper some issue has no test for yet is not dead.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use sqlx::Connection;
use tessera::clock::MockClock;
use tessera::config::Settings;
use tessera::server::Server;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// Runs each named `async fn name(backend: Backend)` once per backend, as
/// `postgres::name` and `sqlite::name`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),+ $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Postgres).await
                }
            )+
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
            )+
        }
    };
}

/// The PostgreSQL server the tests create their databases on.
pub fn postgres_admin_url() -> String {
    std::env::var("TESSERA_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A fresh database for one test: a new PostgreSQL database or a new SQLite file in a temporary
/// directory. Dropped (with its connections) when the value is dropped.
pub struct TestDb {
    pub backend: Backend,
    pub url: String,
    /// The master key every instance on this database uses (as TESSERA_MASTER_KEY).
    pub master_key: String,
    pg_name: Option<String>,
    pub dir: tempfile::TempDir,
}

impl TestDb {
    pub async fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        match backend {
            Backend::Sqlite => {
                let url = format!("sqlite://{}", dir.path().join("tessera.db").display());
                Self {
                    backend,
                    url,
                    master_key: master_key(),
                    pg_name: None,
                    dir,
                }
            }
            Backend::Postgres => {
                let name = format!("tessera_test_{}", uuid::Uuid::new_v4().simple());
                admin_execute(&format!("create database {name}")).await;
                let mut url =
                    url::Url::parse(&postgres_admin_url()).expect("TESSERA_TEST_DATABASE_URL");
                url.set_path(&name);
                Self {
                    backend,
                    url: url.to_string(),
                    master_key: master_key(),
                    pg_name: Some(name),
                    dir,
                }
            }
        }
    }

    /// Simulates an outage: no new connections, and every open one is terminated.
    pub async fn cut_connections(&self) {
        let name = self.pg_name.as_deref().expect("PostgreSQL only");
        admin_execute(&format!("alter database {name} allow_connections false")).await;
        admin_execute(&format!(
            "select pg_terminate_backend(pid) from pg_stat_activity where datname = '{name}'"
        ))
        .await;
    }

    /// Runs statements on the test database from outside the app, on either backend.
    pub async fn execute(&self, sql: &str) {
        match self.backend {
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
                sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
                let _ = conn.close().await;
            }
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
                let _ = conn.close().await;
            }
        }
    }

    /// Fault injection: from now on the database refuses every audit event of `event_type` (a
    /// trigger), so a write that records one fails at that point, after what it wrote before.
    pub async fn refuse_audit_events(&self, event_type: &str) {
        let sql = match self.backend {
            Backend::Postgres => format!(
                "create function refuse_audit() returns trigger language plpgsql as
                     $$ begin raise exception 'refused by the test'; end $$;
                 create trigger refuse_audit before insert on audit_event for each row
                     when (new.event_type = '{event_type}') execute function refuse_audit();"
            ),
            Backend::Sqlite => format!(
                "create trigger refuse_audit before insert on audit_event
                     when new.event_type = '{event_type}'
                     begin select raise(abort, 'refused by the test'); end;"
            ),
        };
        self.execute(&sql).await;
    }

    /// Ends [`TestDb::refuse_audit_events`].
    pub async fn accept_audit_events(&self) {
        self.execute(match self.backend {
            Backend::Postgres => {
                "drop trigger refuse_audit on audit_event; drop function refuse_audit();"
            }
            Backend::Sqlite => "drop trigger refuse_audit",
        })
        .await;
    }

    /// One number from SQL run outside the app (a count, say), on either backend.
    pub async fn scalar(&self, sql: &str) -> i64 {
        match self.backend {
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
                let value = sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap();
                let _ = conn.close().await;
                value
            }
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                let value = sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap();
                let _ = conn.close().await;
                value
            }
        }
    }

    pub async fn restore_connections(&self) {
        let name = self.pg_name.as_deref().expect("PostgreSQL only");
        admin_execute(&format!("alter database {name} allow_connections true")).await;
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else {
            return;
        };
        // Drop runs outside async context: use a runtime of our own on a plain thread.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(admin_execute(&format!(
                    "drop database if exists {name} with (force)"
                )))
        })
        .join();
    }
}

async fn admin_execute(sql: &str) {
    let mut conn = sqlx::PgConnection::connect(&postgres_admin_url())
        .await
        .expect("PostgreSQL answers at TESSERA_TEST_DATABASE_URL");
    sqlx::raw_sql(sql).execute(&mut conn).await.expect(sql);
    let _ = conn.close().await;
}

/// A random master key, base64, as an operator would set TESSERA_MASTER_KEY.
pub fn master_key() -> String {
    let mut bytes = [0u8; 32];
    bytes[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    bytes[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The redirect URI of [`TestApp::code_client`].
pub const REDIRECT_URI: &str = "https://app.example.com/cb";

/// The bootstrap admin every test instance has.
pub const ADMIN_ID: &str = "admin";
pub const ADMIN_SECRET: &str = "test-admin-secret-0123456789";

/// Settings for a test instance on `db`: port 0, short database timeouts, a bootstrap admin.
pub fn settings(db: &TestDb) -> Settings {
    Settings::default()
        .set("listen", "127.0.0.1:0")
        .set("bootstrap_admin_id", ADMIN_ID)
        .set("bootstrap_admin_secret", ADMIN_SECRET)
        .set("database_url", db.url.clone())
        .set("master_key", db.master_key.clone())
        .set("database_acquire_timeout", "5")
        .set("log_format", "json")
}

pub struct TestApp {
    pub url: String,
    pub http: reqwest::Client,
    pub clock: Arc<MockClock>,
    /// The running instance's use cases, for what has no endpoint yet (minting, say).
    pub issuer: Arc<tessera::domain::Issuer>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
    /// Shared by every instance spawned on it; dropped after the last one.
    pub db: Arc<TestDb>,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_on(Arc::new(TestDb::new(backend).await), |s| s).await
    }

    /// An instance on `db` (fresh, or shared with another instance), with adjusted settings.
    pub async fn spawn_on(db: Arc<TestDb>, adjust: impl FnOnce(Settings) -> Settings) -> Self {
        let config = adjust(settings(&db))
            .validate()
            .expect("valid test settings");
        let clock = Arc::new(MockClock::starting_now());
        let server = Server::build(config, clock.clone())
            .await
            .expect("server starts");
        let url = format!("http://{}", server.local_addr());
        let issuer = Arc::clone(server.issuer());
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = stop.await;
        }));
        Self {
            url,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("http client"),
            clock,
            issuer,
            shutdown: Some(shutdown),
            task: Some(task),
            db,
        }
    }

    pub fn keys(&self) -> &tessera::domain::KeyRing {
        self.issuer.keys()
    }

    /// The published JWKS, parsed.
    pub async fn jwks(&self) -> serde_json::Value {
        let response = self.get("/.well-known/jwks.json").send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// The kids the JWKS publishes, sorted.
    pub async fn published_kids(&self) -> Vec<String> {
        let mut kids: Vec<String> = self.jwks().await["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect();
        kids.sort();
        kids
    }

    /// An admin API call with the bootstrap admin's Basic credentials.
    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.request(method, path)
            .basic_auth(ADMIN_ID, Some(ADMIN_SECRET))
    }

    /// GET `path` of the admin API as the bootstrap admin.
    pub async fn admin_get(&self, path: &str) -> reqwest::Response {
        self.admin(reqwest::Method::GET, path).send().await.unwrap()
    }

    /// Registers a client through the admin API; returns (client_id, secret if confidential).
    pub async fn create_client(&self, body: serde_json::Value) -> (String, Option<String>) {
        let response = self
            .admin(reqwest::Method::POST, "/admin/clients")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
        let created: serde_json::Value = response.json().await.unwrap();
        (
            created["client_id"].as_str().unwrap().to_owned(),
            created["client_secret"].as_str().map(str::to_owned),
        )
    }

    /// A confidential client with every grant, scopes `read write`, audience `https://api.example.com`.
    pub async fn standard_client(&self) -> (String, String) {
        let (id, secret) = self
            .create_client(serde_json::json!({
                "grant_types": ["client_credentials", "password", "refresh_token"],
                "scopes": ["read", "write"],
                "audiences": ["https://api.example.com", "https://other.example.com"],
            }))
            .await;
        (id, secret.unwrap())
    }

    /// A client of the authorization code grant (with refresh_token), scopes `read write`,
    /// audience `https://api.example.com`, redirect URIs [`REDIRECT_URI`] and
    /// `http://127.0.0.1/cb`; public (no secret) or confidential.
    pub async fn code_client(&self, public: bool) -> (String, Option<String>) {
        self.create_client(serde_json::json!({
            "grant_types": ["authorization_code", "refresh_token"],
            "scopes": ["read", "write"],
            "audiences": ["https://api.example.com"],
            "redirect_uris": [REDIRECT_URI, "http://127.0.0.1/cb"],
            "public": public,
        }))
        .await
    }

    /// Registers a user through the admin API holding the role `member` (scopes `read write`,
    /// created if missing); returns its id (the `sub`).
    pub async fn create_user(&self, username: &str, password: &str) -> String {
        self.put_role("member", &["read", "write"]).await;
        self.create_user_with_roles(username, password, &["member"])
            .await
    }

    /// Creates or replaces a role through the admin API.
    pub async fn put_role(&self, name: &str, scopes: &[&str]) -> serde_json::Value {
        let response = self
            .admin(reqwest::Method::PUT, &format!("/admin/roles/{name}"))
            .json(&serde_json::json!({ "scopes": scopes }))
            .send()
            .await
            .unwrap();
        assert!(
            response.status() == 200 || response.status() == 201,
            "{}",
            response.text().await.unwrap()
        );
        response.json().await.unwrap()
    }

    /// Registers a user with these roles through the admin API; returns its id (the `sub`).
    pub async fn create_user_with_roles(
        &self,
        username: &str,
        password: &str,
        roles: &[&str],
    ) -> String {
        let response = self
            .admin(reqwest::Method::POST, "/admin/users")
            .json(
                &serde_json::json!({ "username": username, "password": password, "roles": roles }),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
        let user: serde_json::Value = response.json().await.unwrap();
        user["id"].as_str().unwrap().to_owned()
    }

    /// POST /token with these form parameters and, if given, HTTP Basic credentials.
    pub async fn token(
        &self,
        basic: Option<(&str, &str)>,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self.request(reqwest::Method::POST, "/token").form(form);
        if let Some((id, secret)) = basic {
            request = request.basic_auth(id, Some(secret));
        }
        request.send().await.unwrap()
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(format!("{}{path}", self.url))
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.url))
    }

    /// Stops the server gracefully: in-flight requests finish, the pool closes.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("server task")
                .expect("server stops cleanly");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The claims of a JWT, decoded without any check (what a test inspects).
pub fn jwt_claims(token: &str) -> serde_json::Value {
    use base64::Engine;
    let part = token.split('.').nth(1).expect("a JWT has a payload");
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .expect("base64url"),
    )
    .expect("JSON claims")
}

/// Polls `check` until it returns true or `within` elapses.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Asserts the contract's error shape and returns the body.
pub async fn assert_error(
    response: reqwest::Response,
    status: u16,
    code: &str,
) -> serde_json::Value {
    assert_eq!(response.status().as_u16(), status, "status");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "content-type {content_type}"
    );
    let body: serde_json::Value = response.json().await.expect("JSON error body");
    assert_eq!(body["error"], code, "{body}");
    assert!(body["error_description"].is_string(), "{body}");
    body
}
