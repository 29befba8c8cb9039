//! Storage: one interface with a PostgreSQL (production, shared by several instances) and a SQLite (embedded, single instance) implementation. All SQL lives in `postgres.rs` and `sqlite.rs`. Uses: config, model.

use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::config::{DatabaseConfig, DatabaseUrl};
use crate::model::{
    AuditEvent, AuditFilter, AuditRecord, Client, ClientSecretHash, GrantType, KeyState,
    NewRefreshToken, NewSigningKey, RefreshTokenRecord, Revocation, RevocationKind, Session,
    SigningKey, User,
};

mod postgres;
mod sqlite;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Sqlite => "sqlite",
        }
    }
}

/// What every layer above needs from the database. Multi-statement invariants are single
/// methods with their transaction inside, so no caller can leave half a change behind.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    fn backend(&self) -> Backend;

    /// Applies pending migrations. Safe to run from several instances at once: PostgreSQL
    /// serialises them with an advisory lock, and applied versions are skipped.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// One round trip, for readiness.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Closes the pool, waiting for checked-out connections to return.
    async fn close(&self);

    /// (open connections, idle ones) in the pool, for the metrics.
    fn pool_connections(&self) -> (u32, usize);

    /// The stored master-key check ciphertext, if the database has one yet.
    async fn find_master_key_check(&self) -> Result<Option<Vec<u8>>, StoreError>;

    /// Stores the check unless one exists, and returns whichever is stored.
    async fn add_master_key_check(
        &self,
        ciphertext: &[u8],
        now: OffsetDateTime,
    ) -> Result<Vec<u8>, StoreError>;

    async fn list_signing_keys(&self) -> Result<Vec<SigningKey>, StoreError>;

    /// Stores the first active and next keys, unless the database has keys already (another
    /// instance won the race): then nothing changes and the answer is `false`.
    async fn add_initial_signing_keys(
        &self,
        active: &NewSigningKey,
        next: &NewSigningKey,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// One rotation, atomically: the active key retires, `expected_next` becomes active and
    /// `new_next` is published as the next key. `false` (nothing changed) when `expected_next`
    /// is no longer the next key or another instance is changing keys right now.
    async fn rotate_signing_keys(
        &self,
        expected_next: &str,
        new_next: &NewSigningKey,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Revokes `kid` and keeps the set complete: revoking the active key promotes the next one,
    /// and a revoked active or next key is replaced by `replacement` as the next key. Returns the
    /// state the key had, or `None` for an unknown kid.
    async fn revoke_signing_key(
        &self,
        kid: &str,
        replacement: &NewSigningKey,
        now: OffsetDateTime,
    ) -> Result<Option<KeyState>, StoreError>;

    /// Every client, for the in-memory registry.
    async fn list_clients(&self) -> Result<Vec<Client>, StoreError>;

    async fn find_client(&self, client_id: &str) -> Result<Option<Client>, StoreError>;

    /// Registers a client; [`StoreError::Conflict`] if the id is taken. Announced on the feed.
    async fn add_client(&self, client: &Client) -> Result<(), StoreError>;

    /// Replaces a client's secret (the old one stops working at once); `false` for an unknown
    /// client. Announced on the feed.
    async fn update_client_secret(
        &self,
        client_id: &str,
        secret: &ClientSecretHash,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Enables or disables a client; `false` for an unknown client. Announced on the feed.
    async fn set_client_disabled(
        &self,
        client_id: &str,
        disabled: bool,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Registers a user; [`StoreError::Conflict`] if the normalised username is taken.
    async fn add_user(&self, user: &User) -> Result<(), StoreError>;

    async fn find_user(&self, user_id: uuid::Uuid) -> Result<Option<User>, StoreError>;

    async fn find_user_by_username_key(
        &self,
        username_key: &str,
    ) -> Result<Option<User>, StoreError>;

    /// Changes a user's flag or password; `None` for an unknown user. Disabling with the
    /// revocation of the user's sessions and tokens is [`Store::revoke_principal`].
    async fn update_user(
        &self,
        user_id: uuid::Uuid,
        disabled: Option<bool>,
        password_phc: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Option<User>, StoreError>;

    /// Stores a session and, if given, its first refresh token, together, unless the user has
    /// been disabled meanwhile (then `false`, nothing stored): a login racing an offboarding
    /// never outlives it.
    async fn add_session(
        &self,
        session: &Session,
        first: Option<&NewRefreshToken>,
    ) -> Result<bool, StoreError>;

    /// A refresh token by (session id, digest), with its session's state.
    async fn find_refresh_token(
        &self,
        session_id: uuid::Uuid,
        digest: &[u8; 32],
    ) -> Result<Option<RefreshTokenRecord>, StoreError>;

    /// Rotation, in one transaction that locks the session: consumes the token (keeping its
    /// successor sealed for the retry window) and stores the successor, only while the token
    /// is unconsumed and unrevoked and the session unrevoked. `false`: another request
    /// consumed it first, or it was revoked; nothing changed.
    async fn consume_refresh_token(
        &self,
        digest: &[u8; 32],
        successor: &NewRefreshToken,
        successor_ciphertext: &[u8],
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Revokes a session and every refresh token in it, records a `session` revocation (for
    /// the access tokens carrying its `sid`, until `access_tokens_expire_at`) and, if given, an
    /// audit event: one transaction. `false` if it was already revoked or unknown.
    async fn revoke_session(
        &self,
        session_id: uuid::Uuid,
        reason: &str,
        now: OffsetDateTime,
        access_tokens_expire_at: OffsetDateTime,
        audit: Option<&AuditEvent>,
    ) -> Result<bool, StoreError>;

    async fn add_audit_event(&self, event: &AuditEvent) -> Result<(), StoreError>;

    /// Newest first.
    async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError>;

    /// Records a revocation and its audit event, and announces it.
    async fn add_revocation(
        &self,
        kind: RevocationKind,
        value: &str,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// Revocations still in force at `now` with an id above `after`, in id order.
    async fn list_revocations(
        &self,
        after: i64,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Revocation>, StoreError>;

    /// Offboarding or a client's compromise, in one transaction: every live session of the
    /// user (`Subject`) or client (`Client`) and its refresh tokens revoked, a cut-off recorded
    /// for its access tokens (in force until `cutoff_expires_at`), the user or client disabled
    /// if asked, the audit event written. Returns the sessions revoked.
    async fn revoke_principal(
        &self,
        kind: RevocationKind,
        value: &str,
        disable: bool,
        now: OffsetDateTime,
        cutoff_expires_at: OffsetDateTime,
        audit: &AuditEvent,
    ) -> Result<u64, StoreError>;

    /// One housekeeping batch, skipped if another instance is doing it: erases successors
    /// whose retry window closed before `erase_before`, and deletes refresh tokens, sessions,
    /// revocations and throttle rows no longer of any use at `now`. Returns rows touched.
    async fn purge_batch(
        &self,
        now: OffsetDateTime,
        erase_before: OffsetDateTime,
        batch: u32,
    ) -> Result<u64, StoreError>;

    /// Until when `key` is blocked, if it is.
    async fn find_throttle(&self, key: &[u8; 32]) -> Result<Option<OffsetDateTime>, StoreError>;

    /// Counts a failure for `key` within `window` of the first one, and returns the count.
    async fn record_failure(
        &self,
        key: &[u8; 32],
        now: OffsetDateTime,
        window: std::time::Duration,
    ) -> Result<u32, StoreError>;

    async fn block(&self, key: &[u8; 32], until: OffsetDateTime) -> Result<(), StoreError>;

    /// A success forgets past failures.
    async fn clear_failures(&self, key: &[u8; 32]) -> Result<(), StoreError>;

    /// Every key with failures or a block since `since`, with its block: mirrored in memory,
    /// so client authentication needs no round trip.
    async fn list_throttled(
        &self,
        since: OffsetDateTime,
    ) -> Result<Vec<(Vec<u8>, Option<OffsetDateTime>)>, StoreError>;

    /// The change feed: a version per topic, bumped by every write to the topic.
    async fn change_versions(&self) -> Result<Vec<(String, i64)>, StoreError>;

    /// Notifications of changes by any instance (PostgreSQL LISTEN); `None` where the backend
    /// has none (SQLite is single-instance, and polling the versions covers the CLI).
    async fn change_listener(&self) -> Result<Option<Box<dyn ChangeListener>>, StoreError>;
}

/// A stream of change announcements: each names the topic that changed.
#[async_trait]
pub trait ChangeListener: Send {
    async fn recv(&mut self) -> Result<String, StoreError>;
}

/// The change-feed topics.
pub mod topic {
    pub const KEYS: &str = "keys";
    pub const CLIENTS: &str = "clients";
    pub const REVOCATIONS: &str = "revocations";
}

/// The NOTIFY channel of the change feed.
pub const CHANGE_CHANNEL: &str = "tessera_changes";

/// Decodes a stored key's `alg` and `state` columns.
fn decode_key_columns(
    alg: &str,
    state: &str,
) -> Result<(crate::model::SigningAlg, KeyState), StoreError> {
    let alg = alg
        .parse()
        .map_err(|_| StoreError::Other { kind: "decode" })?;
    let state = KeyState::parse(state).ok_or(StoreError::Other { kind: "decode" })?;
    Ok((alg, state))
}

/// Storage failures. `Display` never includes SQL text or values: only the kind and, for
/// database errors, the SQLSTATE or SQLite code.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database does not answer (down, restarting, pool exhausted, connection lost).
    /// Callers map this to 503 `temporarily_unavailable`; nothing was changed.
    #[error("database unavailable ({kind})")]
    Unavailable { kind: &'static str },
    /// A unique constraint refused the write (a duplicate id or name).
    #[error("conflict")]
    Conflict,
    /// A text value the database cannot store (PostgreSQL refuses NUL in text): bad input,
    /// refused before anything was written.
    #[error("text the database cannot store")]
    UnstorableText,
    #[error("database error (code {code})")]
    Database { code: String },
    #[error("database error ({kind})")]
    Other { kind: &'static str },
    #[error("migration failed: {0}")]
    Migrate(String),
}

impl StoreError {
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    /// Keeps the migration version and the SQLSTATE; never the database's message, which may
    /// quote SQL.
    fn from(error: sqlx::migrate::MigrateError) -> Self {
        use sqlx::migrate::MigrateError as M;
        let describe = |e: sqlx::Error| match StoreError::from(e) {
            StoreError::Unavailable { kind } => format!("database unavailable ({kind})"),
            StoreError::Database { code } => format!("code {code}"),
            other => other.to_string(),
        };
        Self::Migrate(match error {
            M::Execute(e) => describe(e),
            M::ExecuteMigration(e, version) => format!("migration {version}: {}", describe(e)),
            M::Source(_) => "cannot read the embedded migrations".to_owned(),
            // The remaining variants name versions only.
            other => other.to_string(),
        })
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        use sqlx::Error as E;
        match &error {
            E::PoolTimedOut => Self::Unavailable {
                kind: "pool timed out",
            },
            E::PoolClosed => Self::Unavailable {
                kind: "pool closed",
            },
            E::Io(_) => Self::Unavailable { kind: "i/o" },
            E::Tls(_) => Self::Unavailable { kind: "tls" },
            E::WorkerCrashed => Self::Unavailable {
                kind: "worker crashed",
            },
            E::Protocol(_) => Self::Unavailable { kind: "protocol" },
            E::Database(db) => {
                let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
                // SQLite reports extended codes (517 is BUSY_SNAPSHOT); the low byte is the
                // primary code.
                let sqlite_busy = db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some()
                    && code.parse::<u32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6));
                // 23505: PostgreSQL unique_violation; 2067 and 1555: SQLite UNIQUE and PRIMARY KEY.
                if matches!(code.as_str(), "23505" | "2067" | "1555") {
                    return Self::Conflict;
                }
                // 22021: character_not_in_repertoire, what PostgreSQL answers for a NUL in text.
                if code == "22021" {
                    return Self::UnstorableText;
                }
                if sqlite_busy || is_unavailable_code(&code) {
                    Self::Unavailable {
                        kind: "server refused",
                    }
                } else {
                    Self::Database { code }
                }
            }
            E::RowNotFound => Self::Other {
                kind: "row not found",
            },
            E::ColumnDecode { .. } | E::Decode(_) | E::ColumnNotFound(_) => {
                Self::Other { kind: "decode" }
            }
            _ => Self::Other { kind: "driver" },
        }
    }
}

/// PostgreSQL: connection exceptions (class 08), shutdown and start-up (57P01-57P03), too many
/// connections (53300), and what a new connection meets while the database is being restored or
/// reconfigured: refused credentials (class 28), a missing database (3D000), a database not
/// accepting connections (55000).
fn is_unavailable_code(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("28")
        || matches!(
            code,
            "57P01" | "57P02" | "57P03" | "53300" | "3D000" | "55000"
        )
}

/// Opens the configured database. PostgreSQL connects lazily, so a server started with
/// `TESSERA_MIGRATE=false` comes up while the database is down and turns ready when it answers.
pub async fn connect(config: &DatabaseConfig) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match &config.url {
        DatabaseUrl::Postgres(options) => Arc::new(PgStore::connect(options, config)),
        DatabaseUrl::Sqlite { options, path } => {
            Arc::new(SqliteStore::connect(options, path, config).await?)
        }
    })
}

/// The stored form of a client's secret: (digest, PHC string).
fn secret_columns(secret: &ClientSecretHash) -> (Option<Vec<u8>>, Option<String>) {
    match secret {
        ClientSecretHash::None => (None, None),
        ClientSecretHash::Digest(digest) => (Some(digest.to_vec()), None),
        ClientSecretHash::Phc(phc) => (None, Some(phc.clone())),
    }
}

fn secret_from_columns(
    digest: Option<Vec<u8>>,
    phc: Option<String>,
) -> Result<ClientSecretHash, StoreError> {
    match (digest, phc) {
        (None, None) => Ok(ClientSecretHash::None),
        (Some(digest), None) => digest
            .try_into()
            .map(ClientSecretHash::Digest)
            .map_err(|_| StoreError::Other { kind: "decode" }),
        (None, Some(phc)) => Ok(ClientSecretHash::Phc(phc)),
        (Some(_), Some(_)) => Err(StoreError::Other { kind: "decode" }),
    }
}

fn json_list(text: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text).map_err(|_| StoreError::Other { kind: "decode" })
}

fn grant_list(text: &str) -> Result<Vec<GrantType>, StoreError> {
    json_list(text)?
        .iter()
        .map(|g| GrantType::parse(g).ok_or(StoreError::Other { kind: "decode" }))
        .collect()
}

fn grant_json(grants: &[GrantType]) -> String {
    serde_json::to_string(&grants.iter().map(|g| g.as_str()).collect::<Vec<_>>())
        .expect("strings serialise")
}

fn list_json(items: &[String]) -> String {
    serde_json::to_string(items).expect("strings serialise")
}
