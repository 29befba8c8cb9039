//! The PostgreSQL store: the production backend, shared by several instances. Uses: config, model.

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Postgres, Transaction, migrate::Migrator};
use time::OffsetDateTime;

use super::{
    Backend, CHANGE_CHANNEL, ChangeListener, Store, StoreError, decode_key_columns, topic,
};
use crate::config::DatabaseConfig;
use crate::model::{KeyState, NewSigningKey, SigningKey};

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
