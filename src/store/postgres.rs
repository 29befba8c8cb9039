//! The PostgreSQL store: the production backend, shared by several instances. Uses: config, model.

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Postgres, Transaction, migrate::Migrator};
use time::OffsetDateTime;

use super::{
    Backend, CHANGE_CHANNEL, ChangeListener, Store, StoreError, decode_key_columns, grant_json,
    grant_list, json_list, list_json, secret_columns, secret_from_columns, topic,
};
use crate::config::DatabaseConfig;
use crate::model::{
    AuditEvent, AuditFilter, AuditRecord, Client, ClientSecretHash, KeyState, NewRefreshToken,
    NewSigningKey, RefreshTokenRecord, Revocation, RevocationKind, Session, SigningKey, User,
};

/// Revocation writers take turns, so revocation ids become visible in order.
const REVOCATION_LOCK: i64 = 0x7465_7373_7265_766b; // "tessrevk"

/// Only one instance at a time runs housekeeping.
const PURGE_LOCK: i64 = 0x7465_7373_7075_7267; // "tesspurg"

#[derive(sqlx::FromRow)]
struct RefreshRow {
    session_id: uuid::Uuid,
    token_digest: Vec<u8>,
    scope: String,
    created_at: OffsetDateTime,
    idle_expires_at: OffsetDateTime,
    consumed_at: Option<OffsetDateTime>,
    revoked_at: Option<OffsetDateTime>,
    successor_ciphertext: Option<Vec<u8>>,
    successor_unused: bool,
    successor_scope: Option<String>,
    client_id: String,
    user_id: uuid::Uuid,
    session_expires_at: OffsetDateTime,
    session_revoked_at: Option<OffsetDateTime>,
    user_disabled: bool,
}

impl TryFrom<RefreshRow> for RefreshTokenRecord {
    type Error = StoreError;

    fn try_from(row: RefreshRow) -> Result<Self, StoreError> {
        Ok(RefreshTokenRecord {
            session_id: row.session_id,
            token_digest: row
                .token_digest
                .try_into()
                .map_err(|_| StoreError::Other { kind: "decode" })?,
            scope: row.scope,
            created_at: row.created_at,
            idle_expires_at: row.idle_expires_at,
            consumed_at: row.consumed_at,
            revoked_at: row.revoked_at,
            successor_ciphertext: row.successor_ciphertext,
            successor_unused: row.successor_unused,
            successor_scope: row.successor_scope,
            client_id: row.client_id,
            user_id: row.user_id,
            session_expires_at: row.session_expires_at,
            session_revoked_at: row.session_revoked_at,
            user_disabled: row.user_disabled,
        })
    }
}

async fn insert_refresh(
    tx: &mut Transaction<'_, Postgres>,
    token: &NewRefreshToken,
) -> Result<(), StoreError> {
    sqlx::query(
        "insert into refresh_token (session_id, token_digest, scope, created_at, idle_expires_at)
         values ($1, $2, $3, $4, $5)",
    )
    .bind(token.session_id)
    .bind(&token.token_digest[..])
    .bind(&token.scope)
    .bind(token.created_at)
    .bind(token.idle_expires_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    audit_event_id: i64,
    created_at: OffsetDateTime,
    event_type: String,
    actor: Option<String>,
    subject: Option<String>,
    client_id: Option<String>,
    session_id: Option<String>,
    source_addr: Option<String>,
    detail: String,
}

impl TryFrom<AuditRow> for AuditRecord {
    type Error = StoreError;

    fn try_from(row: AuditRow) -> Result<Self, StoreError> {
        Ok(AuditRecord {
            audit_event_id: row.audit_event_id,
            created_at: row.created_at,
            event_type: row.event_type,
            actor: row.actor,
            subject: row.subject,
            client_id: row.client_id,
            session_id: row.session_id,
            source_addr: row.source_addr,
            detail: serde_json::from_str(&row.detail)
                .map_err(|_| StoreError::Other { kind: "decode" })?,
        })
    }
}

async fn insert_revocation(
    tx: &mut Transaction<'_, Postgres>,
    kind: RevocationKind,
    value: &str,
    now: OffsetDateTime,
    expires_at: OffsetDateTime,
    actor: Option<&str>,
) -> Result<(), StoreError> {
    // Instances load revocations incrementally by id. An identity value is taken at insert but
    // becomes visible at commit, so two concurrent revocations could appear out of order and
    // the lower id be skipped; revocation writers therefore take turns until they commit.
    sqlx::query("select pg_advisory_xact_lock($1)")
        .bind(REVOCATION_LOCK)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "insert into revocation (kind, value, revoked_at, expires_at, actor, created_at)
         values ($1, $2, $3, $4, $5, $3)",
    )
    .bind(kind.as_str())
    .bind(value)
    .bind(now)
    .bind(expires_at)
    .bind(actor)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_audit(
    tx: &mut Transaction<'_, Postgres>,
    event: &AuditEvent,
) -> Result<(), StoreError> {
    sqlx::query(
        "insert into audit_event (created_at, event_type, actor, subject, client_id, session_id, source_addr, detail)
         values ($1, $2, $3, $4, $5, $6, $7, $8::jsonb)",
    )
    .bind(event.created_at)
    .bind(event.event_type)
    .bind(&event.actor)
    .bind(&event.subject)
    .bind(&event.client_id)
    .bind(event.session_id)
    .bind(&event.source_addr)
    .bind(event.detail.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

const CLIENT_COLUMNS: &str = "client_id, name, secret_digest, secret_phc, grant_types::text as grant_types,
    scopes::text as scopes, audiences::text as audiences, is_admin, can_introspect, disabled, created_at, updated_at";
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
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
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
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct UserRow {
    user_id: uuid::Uuid,
    username: String,
    username_key: String,
    password_phc: String,
    disabled: bool,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> Self {
        User {
            user_id: row.user_id,
            username: row.username,
            username_key: row.username_key,
            password_phc: row.password_phc,
            disabled: row.disabled,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// Serialises signing-key changes across instances (pg_advisory_xact_lock).
const KEY_LOCK: i64 = 0x7465_7373_6b65_7973; // "tesskeys"

#[derive(sqlx::FromRow)]
struct SigningKeyRow {
    kid: String,
    alg: String,
    state: String,
    public_jwk: String,
    private_key_ciphertext: Vec<u8>,
    created_at: OffsetDateTime,
    activated_at: Option<OffsetDateTime>,
    retired_at: Option<OffsetDateTime>,
    revoked_at: Option<OffsetDateTime>,
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
            created_at: row.created_at,
            activated_at: row.activated_at,
            retired_at: row.retired_at,
            revoked_at: row.revoked_at,
        })
    }
}

async fn insert_key(
    tx: &mut Transaction<'_, Postgres>,
    key: &NewSigningKey,
    state: KeyState,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    sqlx::query(
        "insert into signing_key (kid, alg, state, public_jwk, private_key_ciphertext, created_at, activated_at)
         values ($1, $2, $3, $4::jsonb, $5, $6, case when $3 = 'active' then $6 end)",
    )
    .bind(&key.kid)
    .bind(key.alg.as_str())
    .bind(state.as_str())
    .bind(&key.public_jwk)
    .bind(&key.private_key_ciphertext)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Bumps a topic's version and announces it; both take effect at commit.
async fn announce(
    tx: &mut Transaction<'_, Postgres>,
    topic: &str,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    sqlx::query("update change_feed set version = version + 1, changed_at = $2 where topic = $1")
        .bind(topic)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    sqlx::query("select pg_notify($1, $2)")
        .bind(CHANGE_CHANNEL)
        .bind(topic)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Takes the key lock for this transaction, waiting for it.
async fn lock_keys(tx: &mut Transaction<'_, Postgres>) -> Result<(), StoreError> {
    sqlx::query("select pg_advisory_xact_lock($1)")
        .bind(KEY_LOCK)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn next_kid(tx: &mut Transaction<'_, Postgres>) -> Result<Option<String>, StoreError> {
    Ok(
        sqlx::query_scalar("select kid from signing_key where state = 'next'")
            .fetch_optional(&mut **tx)
            .await?,
    )
}

struct PgChangeListener(PgListener);

#[async_trait]
impl ChangeListener for PgChangeListener {
    async fn recv(&mut self) -> Result<String, StoreError> {
        Ok(self.0.recv().await?.payload().to_owned())
    }
}

static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    pub fn connect(options: &PgConnectOptions, config: &DatabaseConfig) -> Self {
        let options = options
            .clone()
            .application_name("tessera")
            .log_statements(log::LevelFilter::Off)
            .log_slow_statements(log::LevelFilter::Off, std::time::Duration::ZERO);
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .min_connections(0)
            .acquire_timeout(config.acquire_timeout)
            .idle_timeout(std::time::Duration::from_secs(600))
            .max_lifetime(std::time::Duration::from_secs(1800))
            // A connection killed by a failover or pg_terminate_backend is found dead here and
            // replaced, instead of failing the request that drew it.
            .test_before_acquire(true)
            .connect_lazy_with(options);
        Self { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = Migrator {
            migrations: MIGRATOR.migrations.clone(),
            // An instance of the previous release keeps starting while a newer one has already
            // added (backwards-compatible) migrations: a rolling upgrade.
            ignore_missing: true,
            // Several instances starting at once take turns (pg_advisory_lock).
            locking: true,
            no_tx: false,
        };
        migrator.run(&self.pool).await.map_err(StoreError::from)
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
        .bind(now)
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
            "select kid, alg, state, public_jwk::text as public_jwk, private_key_ciphertext,
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
        let mut tx = self.pool.begin().await?;
        lock_keys(&mut tx).await?;
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
        let mut tx = self.pool.begin().await?;
        // One instance rotates at a time; the others find the lock taken and stand down.
        let locked: bool = sqlx::query_scalar("select pg_try_advisory_xact_lock($1)")
            .bind(KEY_LOCK)
            .fetch_one(&mut *tx)
            .await?;
        if !locked || next_kid(&mut tx).await?.as_deref() != Some(expected_next) {
            return Ok(false);
        }
        sqlx::query(
            "update signing_key set state = 'retired', retired_at = $1 where state = 'active'",
        )
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query("update signing_key set state = 'active', activated_at = $2 where kid = $1")
            .bind(expected_next)
            .bind(now)
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
        let mut tx = self.pool.begin().await?;
        lock_keys(&mut tx).await?;
        let state: Option<String> =
            sqlx::query_scalar("select state from signing_key where kid = $1 for update")
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
            .bind(now)
            .execute(&mut *tx)
            .await?;
        if state == KeyState::Active {
            // The next key has been published the longest: it takes over at once.
            sqlx::query(
                "update signing_key set state = 'active', activated_at = $1 where state = 'next'",
            )
            .bind(now)
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
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "insert into client (client_id, name, is_public, secret_digest, secret_phc, grant_types, scopes,
                                 audiences, is_admin, can_introspect, disabled, created_at, updated_at)
             values ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8::jsonb, $9, $10, $11, $12, $12)",
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
        .bind(client.created_at)
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
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(
            "update client set secret_digest = $2, secret_phc = $3, secret_rotated_at = $4, updated_at = $4
             where client_id = $1 and not is_public",
        )
        .bind(client_id)
        .bind(digest)
        .bind(phc)
        .bind(now)
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
        let mut tx = self.pool.begin().await?;
        let updated =
            sqlx::query("update client set disabled = $2, updated_at = $3 where client_id = $1")
                .bind(client_id)
                .bind(disabled)
                .bind(now)
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
        .bind(user.user_id)
        .bind(&user.username)
        .bind(&user.username_key)
        .bind(&user.password_phc)
        .bind(user.disabled)
        .bind(user.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn find_user(&self, user_id: uuid::Uuid) -> Result<Option<User>, StoreError> {
        Ok(sqlx::query_as::<_, UserRow>(&format!(
            "select {USER_COLUMNS} from user_account where user_id = $1"
        ))
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?
        .map(User::from))
    }

    async fn find_user_by_username_key(
        &self,
        username_key: &str,
    ) -> Result<Option<User>, StoreError> {
        Ok(sqlx::query_as::<_, UserRow>(&format!(
            "select {USER_COLUMNS} from user_account where username_key = $1"
        ))
        .bind(username_key)
        .fetch_optional(&self.pool)
        .await?
        .map(User::from))
    }

    async fn update_user(
        &self,
        user_id: uuid::Uuid,
        disabled: Option<bool>,
        password_phc: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Option<User>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let user = sqlx::query_as::<_, UserRow>(&format!(
            "update user_account set disabled = coalesce($2, disabled), password_phc = coalesce($3, password_phc),
                                     updated_at = $4
             where user_id = $1 returning {USER_COLUMNS}"
        ))
        .bind(user_id)
        .bind(disabled)
        .bind(password_phc)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(user) = user else { return Ok(None) };
        tx.commit().await?;
        Ok(Some(user.into()))
    }

    async fn add_session(
        &self,
        session: &Session,
        first: Option<&NewRefreshToken>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Waits for an offboarding in progress (it locks the row first), then sees its outcome.
        let enabled: Option<bool> = sqlx::query_scalar(
            "select not disabled from user_account where user_id = $1 for share",
        )
        .bind(session.user_id)
        .fetch_optional(&mut *tx)
        .await?;
        if enabled != Some(true) {
            return Ok(false);
        }
        sqlx::query(
            "insert into session (session_id, client_id, user_id, scope, created_at, expires_at)
             values ($1, $2, $3, $4, $5, $6)",
        )
        .bind(session.session_id)
        .bind(&session.client_id)
        .bind(session.user_id)
        .bind(&session.scope)
        .bind(session.created_at)
        .bind(session.expires_at)
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
                              where n.session_id = t.session_id and n.token_digest = t.successor_digest), false)
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
        .bind(session_id)
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
        // One statement, so one round trip and one implicit transaction: lock the session row
        // (concurrent refreshes of one session queue there; an offboarding that revoked it
        // first is seen), consume the presented token only if it is still live, and insert
        // the successor only if that consumption happened. A refresh that queued behind
        // another finds the token consumed when its update re-checks the row, and inserts
        // nothing. The predecessor's sealed successor (the presented token) is erased at once:
        // now that it is used, a retry of the predecessor is reuse and never gets it back. Only
        // this session's rows are touched.
        let inserted = sqlx::query(
            "with live as (
                 select session_id from session
                 where session_id = $1 and revoked_at is null
                 for update
             ), consumed as (
                 update refresh_token
                 set consumed_at = $3, successor_digest = $4, successor_ciphertext = $5
                 where session_id = (select session_id from live) and token_digest = $2
                   and consumed_at is null and revoked_at is null
                 returning session_id
             ), spent as (
                 update refresh_token set successor_ciphertext = null
                 where session_id = (select session_id from consumed) and successor_digest = $2
                   and successor_ciphertext is not null
             )
             insert into refresh_token (session_id, token_digest, scope, created_at, idle_expires_at)
             select session_id, $4, $6, $7, $8 from consumed",
        )
        .bind(successor.session_id)
        .bind(&digest[..])
        .bind(now)
        .bind(&successor.token_digest[..])
        .bind(successor_ciphertext)
        .bind(&successor.scope)
        .bind(successor.created_at)
        .bind(successor.idle_expires_at)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(inserted == 1)
    }

    async fn revoke_session(
        &self,
        session_id: uuid::Uuid,
        reason: &str,
        now: OffsetDateTime,
        access_tokens_expire_at: OffsetDateTime,
        audit: Option<&AuditEvent>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let revoked = sqlx::query(
            "update session set revoked_at = $2, revoked_reason = $3 where session_id = $1 and revoked_at is null",
        )
        .bind(session_id)
        .bind(now)
        .bind(reason)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query(
            "update refresh_token set revoked_at = coalesce(revoked_at, $2), successor_ciphertext = null
             where session_id = $1 and (revoked_at is null or successor_ciphertext is not null)",
        )
        .bind(session_id)
        .bind(now)
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
        let mut tx = self.pool.begin().await?;
        insert_audit(&mut tx, event).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        let rows: Vec<AuditRow> = sqlx::query_as(
            "select audit_event_id, created_at, event_type, actor, subject, client_id,
                    session_id::text as session_id, source_addr, detail::text as detail
             from audit_event
             where ($1::text is null or subject = $1) and ($2::text is null or client_id = $2)
               and ($3::text is null or event_type = $3)
             order by audit_event_id desc limit $4",
        )
        .bind(&filter.subject)
        .bind(&filter.client_id)
        .bind(&filter.event_type)
        .bind(i64::from(filter.limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(AuditRecord::try_from).collect()
    }

    async fn add_revocation(
        &self,
        kind: RevocationKind,
        value: &str,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
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
        let rows: Vec<(i64, String, String, OffsetDateTime, OffsetDateTime)> = sqlx::query_as(
            "select revocation_id, kind, value, revoked_at, expires_at from revocation
             where revocation_id > $1 and expires_at > $2 order by revocation_id limit $3",
        )
        .bind(after)
        .bind(now)
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
                    revoked_at,
                    expires_at,
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
        let mut tx = self.pool.begin().await?;
        let user_id = uuid::Uuid::parse_str(value).ok();
        if kind == RevocationKind::Subject {
            // The user row first, as update_user and add_session take it: no deadlock, and a
            // login in flight waits, then sees the user disabled.
            sqlx::query("select 1 from user_account where user_id = $1 for update")
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        }
        // Session rows are locked in session_id order, whatever selects them: two offboardings
        // over the same sessions (a user and their client) queue instead of deadlocking.
        let sessions: Vec<uuid::Uuid> = match kind {
            RevocationKind::Subject => {
                sqlx::query_scalar(
                    "update session set revoked_at = $2, revoked_reason = 'subject_revoked'
                     where session_id in (
                         select session_id from session where user_id = $1 and revoked_at is null
                         order by session_id for update)
                     returning session_id",
                )
                .bind(user_id)
                .bind(now)
                .fetch_all(&mut *tx)
                .await?
            }
            _ => {
                sqlx::query_scalar(
                    "update session set revoked_at = $2, revoked_reason = 'client_revoked'
                     where session_id in (
                         select session_id from session where client_id = $1 and revoked_at is null
                         order by session_id for update)
                     returning session_id",
                )
                .bind(value)
                .bind(now)
                .fetch_all(&mut *tx)
                .await?
            }
        };
        sqlx::query(
            "update refresh_token set revoked_at = coalesce(revoked_at, $2), successor_ciphertext = null
             where session_id = any($1) and (revoked_at is null or successor_ciphertext is not null)",
        )
        .bind(&sessions)
        .bind(now)
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
            match kind {
                RevocationKind::Subject => {
                    sqlx::query("update user_account set disabled = true, updated_at = $2 where user_id = $1")
                        .bind(user_id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                }
                _ => {
                    sqlx::query(
                        "update client set disabled = true, updated_at = $2 where client_id = $1",
                    )
                    .bind(value)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    announce(&mut tx, topic::CLIENTS, now).await?;
                }
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
        let mut tx = self.pool.begin().await?;
        let locked: bool = sqlx::query_scalar("select pg_try_advisory_xact_lock($1)")
            .bind(PURGE_LOCK)
            .fetch_one(&mut *tx)
            .await?;
        if !locked {
            return Ok(0);
        }
        let limit = i64::from(batch);
        // Retry-window successors past their window: the sealed copy is erased.
        let mut touched = sqlx::query(
            "update refresh_token set successor_ciphertext = null where ctid in (
                 select ctid from refresh_token where successor_ciphertext is not null and consumed_at < $1 limit $2)",
        )
        .bind(erase_before)
        .bind(limit)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        for statement in [
            // Tokens idle-expired for a day can no longer matter, not even as reuse evidence.
            "delete from refresh_token where ctid in (
                 select ctid from refresh_token where idle_expires_at < $1 - interval '1 day' limit $2)",
            "delete from session where ctid in (
                 select ctid from session where expires_at < $1 - interval '1 day'
                    or revoked_at < $1 - interval '1 day' limit $2)",
            "delete from revocation where ctid in (select ctid from revocation where expires_at < $1 limit $2)",
            "delete from login_throttle where ctid in (
                 select ctid from login_throttle where window_start < $1 - interval '1 day'
                    and (blocked_until is null or blocked_until < $1) limit $2)",
        ] {
            touched += sqlx::query(statement)
                .bind(now)
                .bind(limit)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(touched)
    }

    async fn find_throttle(&self, key: &[u8; 32]) -> Result<Option<OffsetDateTime>, StoreError> {
        Ok(sqlx::query_scalar::<_, Option<OffsetDateTime>>(
            "select blocked_until from login_throttle where throttle_key = $1",
        )
        .bind(&key[..])
        .fetch_optional(&self.pool)
        .await?
        .flatten())
    }

    async fn record_failure(
        &self,
        key: &[u8; 32],
        now: OffsetDateTime,
        window: std::time::Duration,
    ) -> Result<u32, StoreError> {
        let window_opened_after = now - window;
        let failures: i32 = sqlx::query_scalar(
            "insert into login_throttle (throttle_key, failures, window_start) values ($1, 1, $2)
             on conflict (throttle_key) do update set
                failures = case when login_throttle.window_start < $3 then 1 else login_throttle.failures + 1 end,
                window_start = case when login_throttle.window_start < $3 then $2 else login_throttle.window_start end
             returning failures",
        )
        .bind(&key[..])
        .bind(now)
        .bind(window_opened_after)
        .fetch_one(&self.pool)
        .await?;
        Ok(failures.max(0) as u32)
    }

    async fn block(&self, key: &[u8; 32], until: OffsetDateTime) -> Result<(), StoreError> {
        sqlx::query("update login_throttle set blocked_until = $2 where throttle_key = $1")
            .bind(&key[..])
            .bind(until)
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
        Ok(sqlx::query_as(
            "select throttle_key, blocked_until from login_throttle where window_start >= $1 or blocked_until >= $1",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn change_versions(&self) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(sqlx::query_as("select topic, version from change_feed")
            .fetch_all(&self.pool)
            .await?)
    }

    async fn change_listener(&self) -> Result<Option<Box<dyn ChangeListener>>, StoreError> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(CHANGE_CHANNEL).await?;
        Ok(Some(Box::new(PgChangeListener(listener))))
    }
}
