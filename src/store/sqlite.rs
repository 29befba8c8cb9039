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

use super::{Backend, ChangeListener, Store, StoreError, decode_key_columns, topic};
use crate::config::DatabaseConfig;
use crate::model::{KeyState, NewSigningKey, SigningKey};

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

    async fn change_versions(&self) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(sqlx::query_as("select topic, version from change_feed")
            .fetch_all(&self.pool)
            .await?)
    }

    async fn change_listener(&self) -> Result<Option<Box<dyn ChangeListener>>, StoreError> {
        Ok(None)
    }
}
