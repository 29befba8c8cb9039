//! The store contract: every storage method driven through `dyn Store` on both backends, one
//! file per aggregate, each test on a fresh database. Tests assert the exact outcome of each
//! call and the rows it leaves behind, so a backend that drifts from the other fails here
//! before it fails behind HTTP.

mod audit;
mod authorization;
mod change_feed;
mod clients;
mod keys;
mod purge;
mod revocations;
mod roles;
mod sessions;
mod status_lists;
mod throttle;
mod users;

use std::sync::Arc;

use tessera::clock::{Clock, MockClock};
use tessera::model::{
    AuditEvent, Client, ClientSecretHash, GrantType, NewRefreshToken, NewSigningKey, Session,
    SigningAlg, User,
};
use tessera::store::{self, Store};
use time::{Duration, OffsetDateTime};

use crate::helpers::{Backend, TestDb, settings};
use tessera::store::{Consumed, Rotation, SessionAdded};

/// A migrated store on a fresh database. The store is declared first so its pool goes before
/// the database is dropped.
pub struct Fixture {
    pub store: Arc<dyn Store>,
    pub db: TestDb,
}

impl Fixture {
    pub async fn new(backend: Backend) -> Self {
        let db = TestDb::new(backend).await;
        let config = settings(&db).validate().unwrap();
        let store = store::connect(&config.database).await.unwrap();
        store.migrate().await.unwrap();
        Self { store, db }
    }

    pub fn store(&self) -> &dyn Store {
        &*self.store
    }

    /// One number from SQL run outside the store under test (a row count, say).
    pub async fn count(&self, sql: &str) -> i64 {
        self.db.scalar(sql).await
    }

    /// A client and a user, stored: what every session needs.
    pub async fn principal(&self, client_id: &str, username: &str) -> (Client, User) {
        let client = client(client_id, t0());
        self.store.add_client(&client).await.unwrap();
        let user = user(username, t0());
        self.store.add_user(&user, &[]).await.unwrap();
        (client, user)
    }

    /// A stored session of `client` and `user` created at `at`, with its first refresh token
    /// (digest `[first; 32]`).
    pub async fn session(
        &self,
        client: &Client,
        user: &User,
        first: u8,
        at: OffsetDateTime,
    ) -> Session {
        let session = session(client, user, at);
        let added = self
            .store
            .add_session(&session, Some(&token(&session, first, at)))
            .await
            .unwrap();
        assert_eq!(added, SessionAdded::Added);
        session
    }
}

/// "Now" for a test, taken once: whole seconds, which both backends store exactly (PostgreSQL
/// keeps microseconds, SQLite milliseconds).
pub fn t0() -> OffsetDateTime {
    MockClock::starting_now().now()
}

pub fn secs(n: i64) -> Duration {
    Duration::seconds(n)
}

/// A confidential client with a generated-secret digest, the password and refresh grants.
pub fn client(client_id: &str, at: OffsetDateTime) -> Client {
    Client {
        client_id: client_id.to_owned(),
        name: Some(format!("{client_id} app")),
        secret: ClientSecretHash::Digest([7; 32]),
        grant_types: vec![GrantType::Password, GrantType::RefreshToken],
        scopes: vec!["read".into(), "write".into()],
        audiences: vec!["https://api.example.com".into()],
        is_admin: false,
        can_introspect: false,
        disabled: false,
        created_at: at,
        updated_at: at,
        secret_created_at: Some(at),
        secret_max_age: None,
        previous_secret: None,
        redirect_uris: Vec::new(),
        first_party: false,
    }
}

/// A change that only disables (or enables) a client.
pub fn disabling(disabled: bool) -> tessera::store::ClientChange {
    tessera::store::ClientChange {
        disabled: Some(disabled),
        ..Default::default()
    }
}

/// A rotation to `secret` that ends the old one at once and keeps the max age.
pub fn replace(secret: &ClientSecretHash) -> tessera::store::SecretRotation<'_> {
    tessera::store::SecretRotation {
        secret,
        previous_expires_at: None,
        secret_max_age: None,
    }
}

pub fn user(username: &str, at: OffsetDateTime) -> User {
    User {
        user_id: uuid::Uuid::new_v4(),
        username: username.to_owned(),
        username_key: username.to_lowercase(),
        password_phc: format!("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA${username}"),
        disabled: false,
        created_at: at,
        updated_at: at,
    }
}

pub fn session(client: &Client, user: &User, at: OffsetDateTime) -> Session {
    Session {
        session_id: uuid::Uuid::new_v4(),
        client_id: client.client_id.clone(),
        user_id: user.user_id,
        scope: "read write".into(),
        created_at: at,
        expires_at: at + Duration::days(30),
        status: None,
    }
}

pub fn digest(n: u8) -> [u8; 32] {
    [n; 32]
}

/// A refresh token of `session` with digest `[n; 32]`, idle for a day.
pub fn token(session: &Session, n: u8, at: OffsetDateTime) -> NewRefreshToken {
    NewRefreshToken {
        session_id: session.session_id,
        token_digest: digest(n),
        scope: session.scope.clone(),
        created_at: at,
        idle_expires_at: at + Duration::days(1),
        access_status: None,
    }
}

/// One rotation of a batch, `from` into `to`, in `session`.
pub fn rotation(session: &Session, from: u8, to: u8, at: time::OffsetDateTime) -> Rotation {
    Rotation {
        digest: digest(from),
        successor: token(session, to, at),
        successor_ciphertext: Some(vec![to; 16]),
        now: at,
        audit: rotation_event(session, at),
    }
}

/// One rotation, carried out as a batch of one: its outcome.
pub async fn rotate(store: &dyn Store, rotation: Rotation) -> Consumed {
    let outcomes = store.consume_refresh_tokens(&[rotation]).await.unwrap();
    assert_eq!(outcomes.len(), 1);
    outcomes[0]
}

pub fn signing_key(kid: &str) -> NewSigningKey {
    NewSigningKey {
        kid: kid.to_owned(),
        alg: SigningAlg::Es256,
        public_jwk: format!(r#"{{"kty":"EC","crv":"P-256","kid":"{kid}"}}"#),
        private_key_ciphertext: format!("sealed {kid}").into_bytes(),
    }
}

/// The `refresh` event a rotation of `session` at `at` records.
pub fn rotation_event(session: &Session, at: OffsetDateTime) -> AuditEvent {
    AuditEvent {
        actor: Some(session.client_id.clone()),
        subject: Some(session.user_id.to_string()),
        client_id: Some(session.client_id.clone()),
        session_id: Some(session.session_id),
        source_addr: Some("192.0.2.1".into()),
        detail: serde_json::json!({ "scope": session.scope }),
        ..audit("refresh", at)
    }
}

pub fn audit(event_type: &'static str, at: OffsetDateTime) -> AuditEvent {
    AuditEvent {
        event_type,
        actor: Some("admin".into()),
        subject: None,
        client_id: None,
        session_id: None,
        source_addr: None,
        detail: serde_json::json!({}),
        created_at: at,
    }
}
