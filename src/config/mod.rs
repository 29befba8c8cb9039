//! Settings: built-in defaults, then `config/default.toml`, then `--config FILE`, then the flat `TESSERA_*` variables; validated once at start-up. Uses: crypto, model, domain (its token policy).
//!
//! Every setting is one row of `table`: its key, default, parser and meaning. `layers` keeps
//! each value as the exact text it was given (environment values are never guessed into numbers,
//! so a numeric-looking secret stays text); [`Settings::validate`] parses each once, through its
//! row, with an error that names the setting and where it came from, then checks the rules across
//! settings. Nothing else in Tessera reads the environment.

use std::fmt;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;
use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;

use crate::crypto::MasterKey;
use crate::domain::{RotationBatching, TokenPolicy};
use crate::model::SigningAlg;

mod layers;
mod table;

pub use layers::{DEFAULT_CONFIG_FILE, Settings};
pub use table::markdown_table;
use table::*; // the rows, by name: `self.value(&LISTEN)`

/// A start-up error that names the setting at fault, printed as one line. Messages never repeat
/// the offending value: it may be a secret or a URL with a password.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid setting {name} ({origin}): {message}")]
    Invalid {
        name: String,
        origin: String,
        message: String,
    },
    #[error("unknown setting {name} ({origin})")]
    Unknown { name: String, origin: String },
    #[error("config file {path}: {message}")]
    File { path: PathBuf, message: String },
}

impl Settings {
    /// Checks every value once and produces the typed configuration.
    pub fn validate(&self) -> Result<Config, ConfigError> {
        let listen = self.value(&LISTEN)?;
        let issuer = self.get(&ISSUER)?;
        let database = self.value(&DATABASE_URL)?;
        let master_key = self.master_key(&database)?;
        let bootstrap_admin = self.bootstrap_admin()?;
        let access_token_ttl = self.value(&ACCESS_TOKEN_TTL)?;
        let refresh_token_idle_ttl = self.value(&REFRESH_TOKEN_IDLE_TTL)?;
        let refresh_token_absolute_ttl = self.value(&REFRESH_TOKEN_ABSOLUTE_TTL)?;
        if refresh_token_idle_ttl > refresh_token_absolute_ttl {
            let absolute = REFRESH_TOKEN_ABSOLUTE_TTL.variable();
            return Err(self.invalid(
                &REFRESH_TOKEN_IDLE_TTL,
                &format!("must not exceed {absolute}"),
            ));
        }
        let refresh_reuse_grace = self.value(&REFRESH_REUSE_GRACE)?;
        if refresh_reuse_grace >= refresh_token_idle_ttl {
            let idle = REFRESH_TOKEN_IDLE_TTL.variable();
            return Err(self.invalid(
                &REFRESH_REUSE_GRACE,
                &format!("must be shorter than {idle}"),
            ));
        }
        let browser_session_ttl = self.value(&BROWSER_SESSION_TTL)?;
        let browser_session_idle_ttl = self.value(&BROWSER_SESSION_IDLE_TTL)?;
        if browser_session_idle_ttl > browser_session_ttl {
            let absolute = BROWSER_SESSION_TTL.variable();
            return Err(self.invalid(
                &BROWSER_SESSION_IDLE_TTL,
                &format!("must not exceed {absolute}"),
            ));
        }
        let jwks_max_age = self.value(&JWKS_MAX_AGE)?;
        let key_rotation_interval = self.value(&KEY_ROTATION_INTERVAL)?;
        if key_rotation_interval <= jwks_max_age {
            // The next key is published one rotation ahead; verifiers must see it before it signs.
            let max_age = JWKS_MAX_AGE.variable();
            return Err(self.invalid(
                &KEY_ROTATION_INTERVAL,
                &format!(
                    "must be longer than {max_age}, so a new key is published before it signs"
                ),
            ));
        }
        let log_format = self.get(&LOG_FORMAT)?.unwrap_or_else(|| {
            if std::io::stderr().is_terminal() {
                LogFormat::Pretty
            } else {
                LogFormat::Json
            }
        });
        let log_level = self.value(&LOG_LEVEL)?;
        Ok(Config {
            listen,
            issuer,
            database: DatabaseConfig {
                url: database,
                max_connections: self.value(&DATABASE_MAX_CONNECTIONS)?,
                acquire_timeout: self.value(&DATABASE_ACQUIRE_TIMEOUT)?,
            },
            migrate: self.value(&MIGRATE)?,
            master_key,
            master_key_previous: self.get(&MASTER_KEY_PREVIOUS)?,
            bootstrap_admin,
            signing_alg: self.value(&SIGNING_ALG)?,
            tokens: TokenPolicy {
                access_token_ttl,
                refresh_token_idle_ttl,
                refresh_token_absolute_ttl,
                refresh_reuse_grace,
                revocation_max_staleness: self.value(&REVOCATION_MAX_STALENESS)?,
                client_secret_max_age: self.get(&CLIENT_SECRET_MAX_AGE)?,
                status_list_ttl: if self.value(&STATUS_LIST)? {
                    Some(self.value(&STATUS_LIST_TTL)?)
                } else {
                    None
                },
                refresh_batching: RotationBatching {
                    max_wait: Duration::from_micros(self.value(&REFRESH_BATCH_WAIT_US)?.into()),
                    max_size: usize::try_from(self.value(&REFRESH_BATCH_SIZE)?)
                        .unwrap_or(usize::MAX),
                },
                authorization_code_ttl: self.value(&AUTHORIZATION_CODE_TTL)?,
                browser_session_ttl,
                browser_session_idle_ttl,
            },
            key_rotation_interval,
            jwks_max_age,
            request_timeout: self.value(&REQUEST_TIMEOUT)?,
            shutdown_grace: self.value(&SHUTDOWN_GRACE)?,
            trusted_proxies: self.get(&TRUSTED_PROXIES)?.unwrap_or_default(),
            log: LogConfig {
                format: log_format,
                level: log_level,
            },
        })
    }

    fn master_key(&self, database: &DatabaseUrl) -> Result<MasterKeySource, ConfigError> {
        let inline = self.get(&MASTER_KEY)?;
        let file = self.get(&MASTER_KEY_FILE)?;
        match (inline, file, database) {
            (Some(_), Some(_), _) => {
                let (inline, file) = (MASTER_KEY.variable(), MASTER_KEY_FILE.variable());
                Err(self.invalid(
                    &MASTER_KEY,
                    &format!("set either {inline} or {file}, not both"),
                ))
            }
            (Some(key), None, _) => Ok(MasterKeySource::Inline(key)),
            (None, Some(path), _) => MasterKey::read_file(&path)
                .map(|key| MasterKeySource::File(key, path))
                .map_err(|e| self.invalid(&MASTER_KEY_FILE, &e.to_string())),
            (None, None, DatabaseUrl::Sqlite { path, .. }) => {
                let dir = path.parent().unwrap_or(Path::new("."));
                Ok(MasterKeySource::Embedded {
                    key_file: dir.join("master.key"),
                    database_file: path.clone(),
                })
            }
            // Only commands that touch keys need it: `migrate` runs without.
            (None, None, DatabaseUrl::Postgres(_)) => Ok(MasterKeySource::Required),
        }
    }

    fn bootstrap_admin(&self) -> Result<Option<BootstrapAdmin>, ConfigError> {
        let id = self.get(&BOOTSTRAP_ADMIN_ID)?;
        let secret = self.get(&BOOTSTRAP_ADMIN_SECRET)?;
        match (id, secret) {
            (Some(id), Some(secret)) => Ok(Some(BootstrapAdmin { id, secret })),
            (None, None) => Ok(None),
            (Some(_), None) => Err(self.invalid(
                &BOOTSTRAP_ADMIN_SECRET,
                &format!(
                    "must be set together with {}",
                    BOOTSTRAP_ADMIN_ID.variable()
                ),
            )),
            (None, Some(_)) => Err(self.invalid(
                &BOOTSTRAP_ADMIN_ID,
                &format!(
                    "must be set together with {}",
                    BOOTSTRAP_ADMIN_SECRET.variable()
                ),
            )),
        }
    }
}

/// The validated configuration, passed down from `main`.
#[derive(Debug)]
pub struct Config {
    pub listen: SocketAddr,
    /// The configured issuer; without one, `http://` + the bound address.
    pub issuer: Option<String>,
    pub database: DatabaseConfig,
    pub migrate: bool,
    pub master_key: MasterKeySource,
    /// The key a master-key rotation replaces, accepted for reading until every row is
    /// re-encrypted (`tessera master-key rotate`).
    pub master_key_previous: Option<MasterKey>,
    pub bootstrap_admin: Option<BootstrapAdmin>,
    pub signing_alg: SigningAlg,
    pub tokens: TokenPolicy,
    pub key_rotation_interval: Duration,
    pub jwks_max_age: Duration,
    pub request_timeout: Duration,
    /// How long SIGTERM waits for in-flight requests before closing what is left.
    pub shutdown_grace: Duration,
    /// Whose `X-Forwarded-For` names the client's address; none by default.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub log: LogConfig,
}

impl Config {
    /// The binary's configuration: files and environment, validated.
    pub fn load(config_file: Option<&Path>) -> Result<Self, ConfigError> {
        Settings::load(config_file)?.validate()
    }

    /// For the commands that handle signing keys: a master key must be configured.
    pub fn require_master_key(&self) -> Result<(), ConfigError> {
        match self.master_key {
            MasterKeySource::Required => Err(ConfigError::Invalid {
                name: MASTER_KEY.variable(),
                origin: "not set".into(),
                message: format!(
                    "required with PostgreSQL (or {}): base64 of 32 random bytes, e.g. from `openssl rand -base64 32`",
                    MASTER_KEY_FILE.variable()
                ),
            }),
            _ => Ok(()),
        }
    }
}

#[derive(Debug)]
pub struct DatabaseConfig {
    pub url: DatabaseUrl,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

/// Connect options. `Debug` is written by hand: sqlx's would print the password.
#[derive(Clone)]
pub enum DatabaseUrl {
    Postgres(Box<PgConnectOptions>),
    Sqlite {
        options: Box<SqliteConnectOptions>,
        path: PathBuf,
    },
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Postgres(options) => f
                .debug_struct("Postgres")
                .field("host", &options.get_host())
                .field("port", &options.get_port())
                .field("database", &options.get_database())
                .field("username", &options.get_username())
                .finish_non_exhaustive(),
            Self::Sqlite { path, .. } => f.debug_struct("Sqlite").field("path", path).finish(),
        }
    }
}

#[derive(Debug)]
pub enum MasterKeySource {
    Inline(MasterKey),
    File(MasterKey, PathBuf),
    /// The embedded default: generated next to the SQLite database on first start.
    Embedded {
        key_file: PathBuf,
        database_file: PathBuf,
    },
    /// PostgreSQL without a key: fine for `migrate`, refused by commands that need keys.
    Required,
}

pub struct BootstrapAdmin {
    pub id: String,
    pub secret: SecretString,
}

impl fmt::Debug for BootstrapAdmin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BootstrapAdmin")
            .field("id", &self.id)
            .field("secret", &"[redacted]")
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut settings = Settings::default();
        settings.merge_env(pairs.iter().map(|(k, v)| (k.into(), v.into())))?;
        settings.validate()
    }

    fn message(result: Result<Config, ConfigError>) -> String {
        result.expect_err("should be rejected").to_string()
    }

    #[test]
    fn defaults_are_the_contract_defaults() {
        let config = env(&[]).unwrap();
        assert_eq!(config.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(config.issuer, None);
        assert!(
            matches!(&config.database.url, DatabaseUrl::Sqlite { path, .. } if path == Path::new("data/tessera.db"))
        );
        assert!(
            matches!(&config.master_key, MasterKeySource::Embedded { key_file, .. } if key_file == Path::new("data/master.key"))
        );
        assert_eq!(config.signing_alg, SigningAlg::Es256);
        assert_eq!(config.tokens.access_token_ttl, Duration::from_secs(300));
        assert_eq!(
            config.tokens.refresh_token_idle_ttl,
            Duration::from_secs(1_209_600)
        );
        assert_eq!(
            config.tokens.refresh_token_absolute_ttl,
            Duration::from_secs(7_776_000)
        );
        assert_eq!(config.tokens.refresh_reuse_grace, Duration::from_secs(10));
        assert_eq!(config.key_rotation_interval, Duration::from_secs(2_592_000));
        assert_eq!(config.jwks_max_age, Duration::from_secs(300));
        assert!(config.migrate);
    }

    #[test]
    fn the_shipped_default_file_matches_the_built_in_defaults() {
        let mut settings = Settings::default();
        settings
            .merge_file(&Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_CONFIG_FILE))
            .unwrap();
        let from_file = format!("{:?}", settings.validate().unwrap());
        let built_in = format!("{:?}", Settings::default().validate().unwrap());
        assert_eq!(from_file, built_in);
    }

    #[test]
    fn environment_values_stay_text() {
        // A numeric-looking secret must not be turned into a number and rejected or truncated.
        let config = env(&[
            ("TESSERA_BOOTSTRAP_ADMIN_ID", "0001"),
            ("TESSERA_BOOTSTRAP_ADMIN_SECRET", "0000111122223333"),
        ])
        .unwrap();
        let admin = config.bootstrap_admin.unwrap();
        assert_eq!(admin.id, "0001");
        assert_eq!(
            secrecy::ExposeSecret::expose_secret(&admin.secret),
            "0000111122223333"
        );
    }

    #[test]
    fn bad_values_name_the_setting_in_one_line() {
        for (name, value) in [
            ("TESSERA_LISTEN", "localhost"),
            ("TESSERA_ISSUER", "ftp://example.com"),
            ("TESSERA_ISSUER", "https://example.com/?q=1"),
            ("TESSERA_DATABASE_URL", "mysql://u:hunter2@db/x"),
            ("TESSERA_DATABASE_URL", "sqlite::memory:"),
            ("TESSERA_MASTER_KEY", "c2hvcnQ="),
            ("TESSERA_SIGNING_ALG", "HS256"),
            ("TESSERA_SIGNING_ALG", "none"),
            ("TESSERA_ACCESS_TOKEN_TTL", "abc"),
            ("TESSERA_ACCESS_TOKEN_TTL", "0"),
            ("TESSERA_ACCESS_TOKEN_TTL", "-5"),
            ("TESSERA_REFRESH_REUSE_GRACE", "301"),
            ("TESSERA_JWKS_MAX_AGE", "1.5"),
            ("TESSERA_LOG_FORMAT", "xml"),
            ("TESSERA_LOG_LEVEL", "deubg"),
            ("TESSERA_LOG_LEVEL", "tessera=verbose"),
            ("TESSERA_MIGRATE", "yes"),
            ("TESSERA_DATABASE_MAX_CONNECTIONS", "0"),
        ] {
            let message = message(env(&[(name, value)]));
            assert!(message.contains(name), "{name}={value}: {message}");
            assert!(!message.contains('\n'), "{message}");
            assert!(!message.contains("hunter2"), "{message}");
        }
    }

    #[test]
    fn cross_setting_rules_are_enforced() {
        let config = env(&[("TESSERA_DATABASE_URL", "postgres://postgres@127.0.0.1/x")]).unwrap();
        let m = config.require_master_key().unwrap_err().to_string();
        assert!(
            m.contains("TESSERA_MASTER_KEY") && m.contains("required"),
            "{m}"
        );
        let m = message(env(&[
            ("TESSERA_REFRESH_TOKEN_IDLE_TTL", "7200"),
            ("TESSERA_REFRESH_TOKEN_ABSOLUTE_TTL", "3600"),
        ]));
        assert!(m.contains("TESSERA_REFRESH_TOKEN_IDLE_TTL"), "{m}");
        let m = message(env(&[("TESSERA_KEY_ROTATION_INTERVAL", "300")]));
        assert!(m.contains("TESSERA_KEY_ROTATION_INTERVAL"), "{m}");
        let m = message(env(&[("TESSERA_BOOTSTRAP_ADMIN_ID", "admin")]));
        assert!(m.contains("TESSERA_BOOTSTRAP_ADMIN_SECRET"), "{m}");
        let m = message(env(&[
            ("TESSERA_BOOTSTRAP_ADMIN_ID", "admin"),
            ("TESSERA_BOOTSTRAP_ADMIN_SECRET", "short"),
        ]));
        assert!(
            m.contains("TESSERA_BOOTSTRAP_ADMIN_SECRET") && !m.contains("short\""),
            "{m}"
        );
    }

    #[test]
    fn unknown_variables_are_refused_but_test_variables_are_ignored() {
        let m = message(env(&[("TESSERA_ACCES_TOKEN_TTL", "60")]));
        assert!(m.contains("unknown setting TESSERA_ACCES_TOKEN_TTL"), "{m}");
        env(&[("TESSERA_TEST_DATABASE_URL", "postgres://x")]).unwrap();
    }

    #[test]
    fn environment_overrides_files_and_files_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tessera.toml");
        std::fs::write(&file, "access_token_ttl = 120\nsigning_alg = \"EdDSA\"\n").unwrap();
        let mut settings = Settings::default();
        settings.merge_file(&file).unwrap();
        settings
            .merge_env([("TESSERA_ACCESS_TOKEN_TTL".into(), "60".into())])
            .unwrap();
        let config = settings.validate().unwrap();
        assert_eq!(config.tokens.access_token_ttl, Duration::from_secs(60));
        assert_eq!(config.signing_alg, SigningAlg::EdDsa);

        std::fs::write(&file, "acess_token_ttl = 120\n").unwrap();
        let m = Settings::default()
            .merge_file(&file)
            .unwrap_err()
            .to_string();
        assert!(m.contains("unknown setting `acess_token_ttl`"), "{m}");

        std::fs::write(&file, "master_key = \"sekrit\nbroken").unwrap();
        let m = Settings::default()
            .merge_file(&file)
            .unwrap_err()
            .to_string();
        assert!(
            m.contains("not valid TOML at line 1") && !m.contains("sekrit"),
            "{m}"
        );
    }

    #[test]
    fn debug_output_carries_no_secret() {
        let mut settings = Settings::default();
        settings
            .merge_env([
                (
                    "TESSERA_DATABASE_URL".into(),
                    "postgres://u:hunter2@db/x".into(),
                ),
                (
                    "TESSERA_MASTER_KEY".into(),
                    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".into(),
                ),
            ])
            .unwrap();
        let config = settings.validate().unwrap();
        for shown in [format!("{settings:?}"), format!("{config:?}")] {
            assert!(
                !shown.contains("hunter2") && !shown.contains("AAECAwQF"),
                "{shown}"
            );
        }
    }

    #[test]
    fn container_link_variables_are_not_settings() {
        env(&[
            ("TESSERA_SERVICE_HOST", "10.0.0.1"),
            ("TESSERA_SERVICE_PORT", "8080"),
            ("TESSERA_PORT", "tcp://10.0.0.1:8080"),
            ("TESSERA_PORT_8080_TCP_ADDR", "10.0.0.1"),
        ])
        .unwrap();
    }

    #[test]
    fn issuer_is_normalised_without_trailing_slash() {
        let config = env(&[("TESSERA_ISSUER", "https://auth.example.com/")]).unwrap();
        assert_eq!(config.issuer.as_deref(), Some("https://auth.example.com"));
    }
}
