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
use crate::model::{Client, ClientSecretHash, KeyState, NewSigningKey, Session, SigningKey, User};

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
        if disabled == Some(true) {
            sqlx::query(
                "update session set revoked_at = $2, revoked_reason = 'user_disabled'
                 where user_id = $1 and revoked_at is null",
            )
            .bind(user_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Some(user.into()))
    }

    async fn add_session(&self, session: &Session) -> Result<(), StoreError> {
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
        .execute(&self.pool)
        .await?;
        Ok(())
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
