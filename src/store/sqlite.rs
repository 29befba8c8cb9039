//! The SQLite store: the embedded default for a single instance. Uses: config, crypto, model.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, migrate::Migrator};

use sqlx::{Sqlite, Transaction};
use time::OffsetDateTime;

use super::{
    Backend, ChangeListener, Store, StoreError, decode_key_columns, grant_json, grant_list,
    json_list, list_json, secret_columns, secret_from_columns, topic,
};
use crate::config::DatabaseConfig;
use crate::model::{
    AuditEvent, AuditFilter, AuditRecord, Client, ClientSecretHash, KeyState, NewRefreshToken,
    NewSigningKey, RefreshTokenRecord, Revocation, RevocationKind, Session, SigningKey, User,
};

async fn insert_revocation(
    tx: &mut Transaction<'_, Sqlite>,
    kind: RevocationKind,
    value: &str,
    now: OffsetDateTime,
    expires_at: OffsetDateTime,
    actor: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query(
        "insert into revocation (kind, value, revoked_at, expires_at, actor, created_at)
         values ($1, $2, $3, $4, $5, $3)",
    )
    .bind(kind.as_str())
    .bind(value)
    .bind(ms(now))
    .bind(ms(expires_at))
    .bind(actor)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

const DAY_MS: i64 = 86_400_000;

#[derive(sqlx::FromRow)]
struct RefreshRow {
    session_id: String,
    token_digest: Vec<u8>,
    scope: String,
    created_at: i64,
    idle_expires_at: i64,
    consumed_at: Option<i64>,
    revoked_at: Option<i64>,
    successor_ciphertext: Option<Vec<u8>>,
    successor_unused: bool,
    successor_scope: Option<String>,
    client_id: String,
    user_id: String,
    session_expires_at: i64,
    session_revoked_at: Option<i64>,
    user_disabled: bool,
}

impl TryFrom<RefreshRow> for RefreshTokenRecord {
    type Error = StoreError;

    fn try_from(row: RefreshRow) -> Result<Self, StoreError> {
        let decode = |_| StoreError::Other { kind: "decode" };
        Ok(RefreshTokenRecord {
            session_id: row.session_id.parse().map_err(decode)?,
            token_digest: row
                .token_digest
                .try_into()
                .map_err(|_| StoreError::Other { kind: "decode" })?,
            scope: row.scope,
            created_at: from_ms(row.created_at)?,
            idle_expires_at: from_ms(row.idle_expires_at)?,
            consumed_at: from_ms_opt(row.consumed_at)?,
            revoked_at: from_ms_opt(row.revoked_at)?,
            successor_ciphertext: row.successor_ciphertext,
            successor_unused: row.successor_unused,
            successor_scope: row.successor_scope,
            client_id: row.client_id,
            user_id: row.user_id.parse().map_err(decode)?,
            session_expires_at: from_ms(row.session_expires_at)?,
            session_revoked_at: from_ms_opt(row.session_revoked_at)?,
            user_disabled: row.user_disabled,
        })
    }
}

async fn insert_refresh(
    tx: &mut Transaction<'_, Sqlite>,
    token: &NewRefreshToken,
) -> Result<(), StoreError> {
    sqlx::query(
        "insert into refresh_token (session_id, token_digest, scope, created_at, idle_expires_at)
         values ($1, $2, $3, $4, $5)",
    )
    .bind(token.session_id.to_string())
    .bind(&token.token_digest[..])
    .bind(&token.scope)
    .bind(ms(token.created_at))
    .bind(ms(token.idle_expires_at))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_audit(
    tx: &mut Transaction<'_, Sqlite>,
    event: &AuditEvent,
) -> Result<(), StoreError> {
    sqlx::query(
        "insert into audit_event (created_at, event_type, actor, subject, client_id, session_id, source_addr, detail)
         values ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(ms(event.created_at))
    .bind(event.event_type)
    .bind(&event.actor)
    .bind(&event.subject)
    .bind(&event.client_id)
    .bind(event.session_id.map(|s| s.to_string()))
    .bind(&event.source_addr)
    .bind(event.detail.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

const CLIENT_COLUMNS: &str =
    "client_id, name, secret_digest, secret_phc, grant_types, scopes, audiences,
    is_admin, can_introspect, disabled, created_at, updated_at";
const USER_COLUMNS: &str =
    "user_id, username, username_key, password_phc, disabled, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct ClientRow {
    client_id: String,
    name: Option<String>,
    secret_digest: Option<Vec<u8>>,
    secret_phc: Option<String>,
    grant_types: String,
    scopes: String,
    audiences: String,
    is_admin: bool,
    can_introspect: bool,
    disabled: bool,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<ClientRow> for Client {
    type Error = StoreError;

    fn try_from(row: ClientRow) -> Result<Self, StoreError> {
        Ok(Client {
            client_id: row.client_id,
            name: row.name,
            secret: secret_from_columns(row.secret_digest, row.secret_phc)?,
            grant_types: grant_list(&row.grant_types)?,
            scopes: json_list(&row.scopes)?,
            audiences: json_list(&row.audiences)?,
            is_admin: row.is_admin,
            can_introspect: row.can_introspect,
            disabled: row.disabled,
            created_at: from_ms(row.created_at)?,
            updated_at: from_ms(row.updated_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct UserRow {
    user_id: String,
    username: String,
    username_key: String,
    password_phc: String,
    disabled: bool,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;

    fn try_from(row: UserRow) -> Result<Self, StoreError> {
        Ok(User {
            user_id: row
                .user_id
                .parse()
                .map_err(|_| StoreError::Other { kind: "decode" })?,
            username: row.username,
            username_key: row.username_key,
            password_phc: row.password_phc,
            disabled: row.disabled,
            created_at: from_ms(row.created_at)?,
            updated_at: from_ms(row.updated_at)?,
        })
    }
}

/// Times are stored as Unix milliseconds so comparisons in SQL are numeric.
fn ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

fn from_ms(ms: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_err(|_| StoreError::Other { kind: "decode" })
}

fn from_ms_opt(ms: Option<i64>) -> Result<Option<OffsetDateTime>, StoreError> {
    ms.map(from_ms).transpose()
}

#[derive(sqlx::FromRow)]
struct SigningKeyRow {
    kid: String,
    alg: String,
    state: String,
    public_jwk: String,
    private_key_ciphertext: Vec<u8>,
    created_at: i64,
    activated_at: Option<i64>,
    retired_at: Option<i64>,
    revoked_at: Option<i64>,
}

impl TryFrom<SigningKeyRow> for SigningKey {
    type Error = StoreError;

    fn try_from(row: SigningKeyRow) -> Result<Self, StoreError> {
        let (alg, state) = decode_key_columns(&row.alg, &row.state)?;
        Ok(SigningKey {
            kid: row.kid,
            alg,
            state,
            public_jwk: row.public_jwk,
            private_key_ciphertext: row.private_key_ciphertext,
            created_at: from_ms(row.created_at)?,
            activated_at: from_ms_opt(row.activated_at)?,
            retired_at: from_ms_opt(row.retired_at)?,
            revoked_at: from_ms_opt(row.revoked_at)?,
        })
    }
}

async fn insert_key(
    tx: &mut Transaction<'_, Sqlite>,
    key: &NewSigningKey,
    state: KeyState,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    sqlx::query(
        "insert into signing_key (kid, alg, state, public_jwk, private_key_ciphertext, created_at, activated_at)
         values ($1, $2, $3, $4, $5, $6, case when $3 = 'active' then $6 end)",
    )
    .bind(&key.kid)
    .bind(key.alg.as_str())
    .bind(state.as_str())
    .bind(&key.public_jwk)
    .bind(&key.private_key_ciphertext)
    .bind(ms(now))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn announce(
    tx: &mut Transaction<'_, Sqlite>,
    topic: &str,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    sqlx::query("update change_feed set version = version + 1, changed_at = $2 where topic = $1")
        .bind(topic)
        .bind(ms(now))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    pub async fn connect(
        options: &SqliteConnectOptions,
        path: &Path,
        config: &DatabaseConfig,
    ) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::crypto::create_private_dir(dir).map_err(|_| StoreError::Unavailable {
                kind: "cannot create the database directory",
            })?;
        }
        let options = options
            .clone()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // Revocations and rotations must survive a power cut, not only a process crash.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5))
            .log_statements(log::LevelFilter::Off)
            .log_slow_statements(log::LevelFilter::Off, Duration::ZERO);
        let pool = SqlitePoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(config.acquire_timeout)
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await.map_err(StoreError::from)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("select 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    fn pool_connections(&self) -> (u32, usize) {
        (self.pool.size(), self.pool.num_idle())
    }

    async fn find_master_key_check(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(sqlx::query_scalar(
            "select ciphertext from master_key_check where master_key_check_id = 1",
        )
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn add_master_key_check(
        &self,
        ciphertext: &[u8],
        now: OffsetDateTime,
    ) -> Result<Vec<u8>, StoreError> {
        sqlx::query(
            "insert into master_key_check (master_key_check_id, ciphertext, created_at) values (1, $1, $2)
             on conflict (master_key_check_id) do nothing",
        )
        .bind(ciphertext)
        .bind(ms(now))
        .execute(&self.pool)
        .await?;
        self.find_master_key_check()
            .await?
            .ok_or(StoreError::Other {
                kind: "row not found",
            })
    }

    async fn list_signing_keys(&self) -> Result<Vec<SigningKey>, StoreError> {
        sqlx::query_as::<_, SigningKeyRow>(
            "select kid, alg, state, public_jwk, private_key_ciphertext,
                    created_at, activated_at, retired_at, revoked_at
             from signing_key order by created_at, kid",
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(SigningKey::try_from)
        .collect()
    }

    async fn add_initial_signing_keys(
        &self,
        active: &NewSigningKey,
        next: &NewSigningKey,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        // IMMEDIATE takes the write lock up front: no deadlock upgrading a read lock.
        let mut tx = self.pool.begin_with("begin immediate").await?;
        let existing: i64 = sqlx::query_scalar("select count(*) from signing_key")
            .fetch_one(&mut *tx)
            .await?;
        if existing > 0 {
            return Ok(false);
        }
        insert_key(&mut tx, active, KeyState::Active, now).await?;
        insert_key(&mut tx, next, KeyState::Next, now).await?;
        announce(&mut tx, topic::KEYS, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn rotate_signing_keys(
        &self,
        expected_next: &str,
        new_next: &NewSigningKey,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin_with("begin immediate").await?;
        let next: Option<String> =
            sqlx::query_scalar("select kid from signing_key where state = 'next'")
                .fetch_optional(&mut *tx)
                .await?;
        if next.as_deref() != Some(expected_next) {
            return Ok(false);
        }
        sqlx::query(
            "update signing_key set state = 'retired', retired_at = $1 where state = 'active'",
        )
        .bind(ms(now))
        .execute(&mut *tx)
        .await?;
        sqlx::query("update signing_key set state = 'active', activated_at = $2 where kid = $1")
            .bind(expected_next)
            .bind(ms(now))
            .execute(&mut *tx)
            .await?;
        insert_key(&mut tx, new_next, KeyState::Next, now).await?;
        announce(&mut tx, topic::KEYS, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn revoke_signing_key(
        &self,
        kid: &str,
        replacement: &NewSigningKey,
        now: OffsetDateTime,
    ) -> Result<Option<KeyState>, StoreError> {
        let mut tx = self.pool.begin_with("begin immediate").await?;
        let state: Option<String> =
            sqlx::query_scalar("select state from signing_key where kid = $1")
                .bind(kid)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(state) = state.as_deref().and_then(KeyState::parse) else {
            return Ok(None);
        };
        if state == KeyState::Revoked {
            return Ok(Some(state));
        }
        sqlx::query("update signing_key set state = 'revoked', revoked_at = $2 where kid = $1")
            .bind(kid)
            .bind(ms(now))
            .execute(&mut *tx)
            .await?;
        if state == KeyState::Active {
            sqlx::query(
                "update signing_key set state = 'active', activated_at = $1 where state = 'next'",
            )
            .bind(ms(now))
            .execute(&mut *tx)
            .await?;
        }
        if matches!(state, KeyState::Active | KeyState::Next) {
            insert_key(&mut tx, replacement, KeyState::Next, now).await?;
        }
        announce(&mut tx, topic::KEYS, now).await?;
        tx.commit().await?;
        Ok(Some(state))
    }

    async fn list_clients(&self) -> Result<Vec<Client>, StoreError> {
        sqlx::query_as::<_, ClientRow>(&format!("select {CLIENT_COLUMNS} from client"))
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(Client::try_from)
            .collect()
    }

    async fn find_client(&self, client_id: &str) -> Result<Option<Client>, StoreError> {
        sqlx::query_as::<_, ClientRow>(&format!(
            "select {CLIENT_COLUMNS} from client where client_id = $1"
        ))
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await?
        .map(Client::try_from)
        .transpose()
    }

    async fn add_client(&self, client: &Client) -> Result<(), StoreError> {
        let (digest, phc) = secret_columns(&client.secret);
        let mut tx = self.pool.begin_with("begin immediate").await?;
        sqlx::query(
            "insert into client (client_id, name, is_public, secret_digest, secret_phc, grant_types, scopes,
                                 audiences, is_admin, can_introspect, disabled, created_at, updated_at)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)",
        )
        .bind(&client.client_id)
        .bind(&client.name)
        .bind(client.is_public())
        .bind(digest)
        .bind(phc)
        .bind(grant_json(&client.grant_types))
        .bind(list_json(&client.scopes))
        .bind(list_json(&client.audiences))
        .bind(client.is_admin)
        .bind(client.can_introspect)
        .bind(client.disabled)
        .bind(ms(client.created_at))
        .execute(&mut *tx)
        .await?;
        announce(&mut tx, topic::CLIENTS, client.created_at).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn update_client_secret(
        &self,
        client_id: &str,
        secret: &ClientSecretHash,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let (digest, phc) = secret_columns(secret);
        let mut tx = self.pool.begin_with("begin immediate").await?;
        let updated = sqlx::query(
            "update client set secret_digest = $2, secret_phc = $3, secret_rotated_at = $4, updated_at = $4
             where client_id = $1 and not is_public",
        )
        .bind(client_id)
        .bind(digest)
        .bind(phc)
        .bind(ms(now))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            return Ok(false);
        }
        announce(&mut tx, topic::CLIENTS, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn set_client_disabled(
        &self,
        client_id: &str,
        disabled: bool,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin_with("begin immediate").await?;
        let updated =
            sqlx::query("update client set disabled = $2, updated_at = $3 where client_id = $1")
                .bind(client_id)
                .bind(disabled)
                .bind(ms(now))
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if updated == 0 {
            return Ok(false);
        }
        announce(&mut tx, topic::CLIENTS, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn add_user(&self, user: &User) -> Result<(), StoreError> {
        sqlx::query(
            "insert into user_account (user_id, username, username_key, password_phc, disabled, created_at, updated_at)
             values ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(user.user_id.to_string())
        .bind(&user.username)
        .bind(&user.username_key)
        .bind(&user.password_phc)
        .bind(user.disabled)
        .bind(ms(user.created_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn find_user(&self, user_id: uuid::Uuid) -> Result<Option<User>, StoreError> {
        sqlx::query_as::<_, UserRow>(&format!(
            "select {USER_COLUMNS} from user_account where user_id = $1"
        ))
        .bind(user_id.to_string())
        .fetch_optional(&self.pool)
        .await?
        .map(User::try_from)
        .transpose()
    }

    async fn find_user_by_username_key(
        &self,
        username_key: &str,
    ) -> Result<Option<User>, StoreError> {
        sqlx::query_as::<_, UserRow>(&format!(
            "select {USER_COLUMNS} from user_account where username_key = $1"
        ))
        .bind(username_key)
        .fetch_optional(&self.pool)
        .await?
        .map(User::try_from)
        .transpose()
    }

    async fn update_user(
        &self,
        user_id: uuid::Uuid,
        disabled: Option<bool>,
        password_phc: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Option<User>, StoreError> {
        let mut tx = self.pool.begin_with("begin immediate").await?;
        let user = sqlx::query_as::<_, UserRow>(&format!(
            "update user_account set disabled = coalesce($2, disabled), password_phc = coalesce($3, password_phc),
                                     updated_at = $4
             where user_id = $1 returning {USER_COLUMNS}"
        ))
        .bind(user_id.to_string())
        .bind(disabled)
        .bind(password_phc)
        .bind(ms(now))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(user) = user else { return Ok(None) };
        tx.commit().await?;
        User::try_from(user).map(Some)
    }

    async fn add_session(
        &self,
        session: &Session,
        first: Option<&NewRefreshToken>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin_with("begin immediate").await?;
        let enabled: Option<bool> =
            sqlx::query_scalar("select not disabled from user_account where user_id = $1")
                .bind(session.user_id.to_string())
                .fetch_optional(&mut *tx)
                .await?;
        if enabled != Some(true) {
            return Ok(false);
        }
        sqlx::query(
            "insert into session (session_id, client_id, user_id, scope, created_at, expires_at)
             values ($1, $2, $3, $4, $5, $6)",
        )
        .bind(session.session_id.to_string())
        .bind(&session.client_id)
        .bind(session.user_id.to_string())
        .bind(&session.scope)
        .bind(ms(session.created_at))
        .bind(ms(session.expires_at))
        .execute(&mut *tx)
        .await?;
        if let Some(first) = first {
            insert_refresh(&mut tx, first).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn find_refresh_token(
        &self,
        session_id: uuid::Uuid,
        digest: &[u8; 32],
    ) -> Result<Option<RefreshTokenRecord>, StoreError> {
        sqlx::query_as::<_, RefreshRow>(
            "select t.session_id, t.token_digest, t.scope, t.created_at, t.idle_expires_at, t.consumed_at,
                    t.revoked_at, t.successor_ciphertext,
                    coalesce((select n.consumed_at is null and n.revoked_at is null from refresh_token n
                              where n.session_id = t.session_id and n.token_digest = t.successor_digest), 0)
                        as successor_unused,
                    (select n.scope from refresh_token n
                     where n.session_id = t.session_id and n.token_digest = t.successor_digest) as successor_scope,
                    s.client_id, s.user_id, s.expires_at as session_expires_at,
                    s.revoked_at as session_revoked_at, u.disabled as user_disabled
             from refresh_token t
             join session s on s.session_id = t.session_id
             join user_account u on u.user_id = s.user_id
             where t.session_id = $1 and t.token_digest = $2",
        )
        .bind(session_id.to_string())
        .bind(&digest[..])
        .fetch_optional(&self.pool)
        .await?
        .map(RefreshTokenRecord::try_from)
        .transpose()
    }

    async fn consume_refresh_token(
        &self,
        digest: &[u8; 32],
        successor: &NewRefreshToken,
        successor_ciphertext: &[u8],
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        // IMMEDIATE: the write lock first, so concurrent rotations queue instead of deadlocking.
        let mut tx = self.pool.begin_with("begin immediate").await?;
        let live: Option<bool> =
            sqlx::query_scalar("select revoked_at is null from session where session_id = $1")
                .bind(successor.session_id.to_string())
                .fetch_optional(&mut *tx)
                .await?;
        if live != Some(true) {
            return Ok(false);
        }
        let consumed = sqlx::query(
            "update refresh_token set consumed_at = $3, successor_digest = $4, successor_ciphertext = $5
             where session_id = $1 and token_digest = $2 and consumed_at is null and revoked_at is null",
        )
        .bind(successor.session_id.to_string())
        .bind(&digest[..])
        .bind(ms(now))
        .bind(&successor.token_digest[..])
        .bind(successor_ciphertext)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if consumed != 1 {
            return Ok(false);
        }
        // The predecessor's sealed successor (the presented token) is used now: erase it.
        sqlx::query(
            "update refresh_token set successor_ciphertext = null
             where session_id = $1 and successor_digest = $2 and successor_ciphertext is not null",
        )
        .bind(successor.session_id.to_string())
        .bind(&digest[..])
        .execute(&mut *tx)
        .await?;
        insert_refresh(&mut tx, successor).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn revoke_session(
        &self,
        session_id: uuid::Uuid,
        reason: &str,
        now: OffsetDateTime,
        access_tokens_expire_at: OffsetDateTime,
        audit: Option<&AuditEvent>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin_with("begin immediate").await?;
        let id = session_id.to_string();
        let revoked = sqlx::query(
            "update session set revoked_at = $2, revoked_reason = $3 where session_id = $1 and revoked_at is null",
        )
        .bind(&id)
        .bind(ms(now))
        .bind(reason)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query(
            "update refresh_token set revoked_at = coalesce(revoked_at, $2), successor_ciphertext = null
             where session_id = $1 and (revoked_at is null or successor_ciphertext is not null)",
        )
        .bind(&id)
        .bind(ms(now))
        .execute(&mut *tx)
        .await?;
        if revoked == 1 {
            insert_revocation(
                &mut tx,
                RevocationKind::Session,
                &session_id.to_string(),
                now,
                access_tokens_expire_at,
                audit.and_then(|a| a.actor.as_deref()),
            )
            .await?;
            announce(&mut tx, topic::REVOCATIONS, now).await?;
        }
        if let Some(event) = audit {
            insert_audit(&mut tx, event).await?;
        }
        tx.commit().await?;
        Ok(revoked == 1)
    }

    async fn add_audit_event(&self, event: &AuditEvent) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("begin immediate").await?;
        insert_audit(&mut tx, event).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        #[allow(clippy::type_complexity)]
        let rows: Vec<(i64, i64, String, Option<String>, Option<String>, Option<String>, Option<String>, Option<String>, String)> =
            sqlx::query_as(
                "select audit_event_id, created_at, event_type, actor, subject, client_id, session_id, source_addr, detail
                 from audit_event
                 where ($1 is null or subject = $1) and ($2 is null or client_id = $2) and ($3 is null or event_type = $3)
                 order by audit_event_id desc limit $4",
            )
            .bind(&filter.subject)
            .bind(&filter.client_id)
            .bind(&filter.event_type)
            .bind(i64::from(filter.limit))
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter()
            .map(
                |(
                    id,
                    created_at,
                    event_type,
                    actor,
                    subject,
                    client_id,
                    session_id,
                    source_addr,
                    detail,
                )| {
                    Ok(AuditRecord {
                        audit_event_id: id,
                        created_at: from_ms(created_at)?,
                        event_type,
                        actor,
                        subject,
                        client_id,
                        session_id,
                        source_addr,
                        detail: serde_json::from_str(&detail)
                            .map_err(|_| StoreError::Other { kind: "decode" })?,
                    })
                },
            )
            .collect()
    }

    async fn add_revocation(
        &self,
        kind: RevocationKind,
        value: &str,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("begin immediate").await?;
        insert_revocation(
            &mut tx,
            kind,
            value,
            now,
            expires_at,
            audit.actor.as_deref(),
        )
        .await?;
        announce(&mut tx, topic::REVOCATIONS, now).await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_revocations(
        &self,
        after: i64,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Revocation>, StoreError> {
        let rows: Vec<(i64, String, String, i64, i64)> = sqlx::query_as(
            "select revocation_id, kind, value, revoked_at, expires_at from revocation
             where revocation_id > $1 and expires_at > $2 order by revocation_id limit $3",
        )
        .bind(after)
        .bind(ms(now))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(revocation_id, kind, value, revoked_at, expires_at)| {
                Ok(Revocation {
                    revocation_id,
                    kind: RevocationKind::parse(&kind)
                        .ok_or(StoreError::Other { kind: "decode" })?,
                    value,
                    revoked_at: from_ms(revoked_at)?,
                    expires_at: from_ms(expires_at)?,
                })
            })
            .collect()
    }

    async fn revoke_principal(
        &self,
        kind: RevocationKind,
        value: &str,
        disable: bool,
        now: OffsetDateTime,
        cutoff_expires_at: OffsetDateTime,
        audit: &AuditEvent,
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin_with("begin immediate").await?;
        let (column, reason) = match kind {
            RevocationKind::Subject => ("user_id", "subject_revoked"),
            _ => ("client_id", "client_revoked"),
        };
        let sessions: Vec<String> = sqlx::query_scalar(&format!(
            "update session set revoked_at = $2, revoked_reason = '{reason}'
             where {column} = $1 and revoked_at is null returning session_id"
        ))
        .bind(value)
        .bind(ms(now))
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query(&format!(
            "update refresh_token set revoked_at = coalesce(revoked_at, $2), successor_ciphertext = null
             where session_id in (select session_id from session where {column} = $1 and revoked_at = $2)
               and (revoked_at is null or successor_ciphertext is not null)"
        ))
        .bind(value)
        .bind(ms(now))
        .execute(&mut *tx)
        .await?;
        insert_revocation(
            &mut tx,
            kind,
            value,
            now,
            cutoff_expires_at,
            audit.actor.as_deref(),
        )
        .await?;
        if disable {
            let table = if kind == RevocationKind::Subject {
                "user_account"
            } else {
                "client"
            };
            sqlx::query(&format!(
                "update {table} set disabled = 1, updated_at = $2 where {column} = $1"
            ))
            .bind(value)
            .bind(ms(now))
            .execute(&mut *tx)
            .await?;
            if kind == RevocationKind::Client {
                announce(&mut tx, topic::CLIENTS, now).await?;
            }
        }
        announce(&mut tx, topic::REVOCATIONS, now).await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(sessions.len() as u64)
    }

    async fn purge_batch(
        &self,
        now: OffsetDateTime,
        erase_before: OffsetDateTime,
        batch: u32,
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin_with("begin immediate").await?;
        let limit = i64::from(batch);
        let mut touched = sqlx::query(
            "update refresh_token set successor_ciphertext = null where rowid in (
                 select rowid from refresh_token where successor_ciphertext is not null and consumed_at < $1 limit $2)",
        )
        .bind(ms(erase_before))
        .bind(limit)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        for statement in [
            "delete from refresh_token where rowid in (
                 select rowid from refresh_token where idle_expires_at < $1 - $3 limit $2)",
            "delete from session where rowid in (
                 select rowid from session where expires_at < $1 - $3 or revoked_at < $1 - $3 limit $2)",
            "delete from revocation where rowid in (select rowid from revocation where expires_at < $1 limit $2)",
            "delete from login_throttle where rowid in (
                 select rowid from login_throttle where window_start < $1 - $3
                    and (blocked_until is null or blocked_until < $1) limit $2)",
        ] {
            touched += sqlx::query(statement)
                .bind(ms(now))
                .bind(limit)
                .bind(DAY_MS)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(touched)
    }

    async fn find_throttle(&self, key: &[u8; 32]) -> Result<Option<OffsetDateTime>, StoreError> {
        let until: Option<Option<i64>> =
            sqlx::query_scalar("select blocked_until from login_throttle where throttle_key = $1")
                .bind(&key[..])
                .fetch_optional(&self.pool)
                .await?;
        from_ms_opt(until.flatten())
    }

    async fn record_failure(
        &self,
        key: &[u8; 32],
        now: OffsetDateTime,
        window: std::time::Duration,
    ) -> Result<u32, StoreError> {
        let failures: i64 = sqlx::query_scalar(
            "insert into login_throttle (throttle_key, failures, window_start) values ($1, 1, $2)
             on conflict (throttle_key) do update set
                failures = case when login_throttle.window_start < $3 then 1 else login_throttle.failures + 1 end,
                window_start = case when login_throttle.window_start < $3 then $2 else login_throttle.window_start end
             returning failures",
        )
        .bind(&key[..])
        .bind(ms(now))
        .bind(ms(now - window))
        .fetch_one(&self.pool)
        .await?;
        Ok(failures.clamp(0, i64::from(u32::MAX)) as u32)
    }

    async fn block(&self, key: &[u8; 32], until: OffsetDateTime) -> Result<(), StoreError> {
        sqlx::query("update login_throttle set blocked_until = $2 where throttle_key = $1")
            .bind(&key[..])
            .bind(ms(until))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn clear_failures(&self, key: &[u8; 32]) -> Result<(), StoreError> {
        sqlx::query("delete from login_throttle where throttle_key = $1")
            .bind(&key[..])
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn list_throttled(
        &self,
        since: OffsetDateTime,
    ) -> Result<Vec<(Vec<u8>, Option<OffsetDateTime>)>, StoreError> {
        let rows: Vec<(Vec<u8>, Option<i64>)> = sqlx::query_as(
            "select throttle_key, blocked_until from login_throttle where window_start >= $1 or blocked_until >= $1",
        )
        .bind(ms(since))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(key, until)| Ok((key, from_ms_opt(until)?)))
            .collect()
    }

    async fn change_versions(&self) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(sqlx::query_as("select topic, version from change_feed")
            .fetch_all(&self.pool)
            .await?)
    }

    async fn change_listener(&self) -> Result<Option<Box<dyn ChangeListener>>, StoreError> {
        Ok(None)
    }
}
