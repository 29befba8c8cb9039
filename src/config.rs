//! Settings: built-in defaults, then `config/default.toml`, then `--config FILE`, then the flat `TESSERA_*` variables; validated once at start-up. Uses: crypto, model, domain (its token policy).
//!
//! Every value is kept as the exact text it was given (environment values are never guessed into
//! numbers, so a numeric-looking secret stays text) and parsed once, here, with an error that
//! names the setting and where it came from. Nothing else in Tessera reads the environment.

use std::collections::BTreeMap;
use std::fmt;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use secrecy::SecretString;
use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;

use crate::crypto::MasterKey;
use crate::domain::TokenPolicy;
use crate::model::SigningAlg;

const ENV_PREFIX: &str = "TESSERA_";
/// Variables under this prefix belong to the test suite, not to the server.
const TEST_ENV_PREFIX: &str = "TESSERA_TEST_";
pub const DEFAULT_CONFIG_FILE: &str = "config/default.toml";

/// Every setting, by its file key; the variable is `TESSERA_` + the key in upper case.
const KEYS: &[&str] = &[
    "listen",
    "issuer",
    "database_url",
    "database_max_connections",
    "database_acquire_timeout",
    "migrate",
    "master_key",
    "master_key_file",
    "bootstrap_admin_id",
    "bootstrap_admin_secret",
    "signing_alg",
    "access_token_ttl",
    "refresh_token_idle_ttl",
    "refresh_token_absolute_ttl",
    "refresh_reuse_grace",
    "key_rotation_interval",
    "jwks_max_age",
    "request_timeout",
    "shutdown_grace",
    "log_format",
    "log_level",
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    File(PathBuf),
    Environment,
    Explicit,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => write!(f, "from {}", path.display()),
            Self::Environment => f.write_str("from the environment"),
            Self::Explicit => f.write_str("set explicitly"),
        }
    }
}

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

/// Raw settings as layered text, before validation.
#[derive(Default, Clone)]
pub struct Settings {
    values: BTreeMap<&'static str, (String, Source)>,
}

/// Names and sources only: the values include secrets and a URL that may carry a password.
impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.values.iter().map(|(k, (_, source))| (k, source)))
            .finish()
    }
}

impl Settings {
    /// Loads the layers the binary uses: `config/default.toml` if present, the `--config` file,
    /// then the `TESSERA_*` variables.
    pub fn load(config_file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut settings = Self::default();
        let default_file = Path::new(DEFAULT_CONFIG_FILE);
        if default_file.exists() {
            settings.merge_file(default_file)?;
        }
        if let Some(path) = config_file {
            settings.merge_file(path)?;
        }
        settings.merge_env(std::env::vars_os())?;
        Ok(settings)
    }

    /// Sets one value by its file key (as tests and embedders do).
    ///
    /// # Panics
    /// On an unknown key: that is a programming error, not an operator's.
    pub fn set(mut self, key: &str, value: impl Into<String>) -> Self {
        let key = known_key(key).unwrap_or_else(|| panic!("unknown setting key {key}"));
        self.values.insert(key, (value.into(), Source::Explicit));
        self
    }

    pub fn merge_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let file_error = |message: String| ConfigError::File {
            path: path.to_owned(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
        let table = toml::Table::from_str(&text).map_err(|e| {
            // The error's own Display quotes the offending line, which may hold a secret.
            let line = e.span().map(|span| {
                let before = &text.as_bytes()[..span.start.min(text.len())];
                before.iter().filter(|b| **b == b'\n').count() + 1
            });
            // One line: the parser's message may span several.
            let message = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
            file_error(match line {
                Some(line) => format!("not valid TOML at line {line}: {message}"),
                None => format!("not valid TOML: {message}"),
            })
        })?;
        for (key, value) in table {
            let source = Source::File(path.to_owned());
            let Some(known) = known_key(&key) else {
                return Err(ConfigError::Unknown {
                    name: format!("`{key}`"),
                    origin: source.to_string(),
                });
            };
            let text = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                _ => {
                    return Err(invalid(
                        known,
                        &source,
                        "must be a string, a whole number or a boolean",
                    ));
                }
            };
            self.values.insert(known, (text, source));
        }
        Ok(())
    }

    pub fn merge_env(
        &mut self,
        vars: impl IntoIterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
    ) -> Result<(), ConfigError> {
        for (name, value) in vars {
            let Some(name) = name.to_str() else { continue };
            let Some(suffix) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            if name.starts_with(TEST_ENV_PREFIX) || is_service_link(name) {
                continue;
            }
            let Some(key) = known_key(&suffix.to_ascii_lowercase()) else {
                // A misspelt variable would otherwise fall back to a default without a word.
                return Err(ConfigError::Unknown {
                    name: name.to_owned(),
                    origin: Source::Environment.to_string(),
                });
            };
            let Ok(value) = value.into_string() else {
                return Err(invalid(key, &Source::Environment, "must be valid UTF-8"));
            };
            self.values.insert(key, (value, Source::Environment));
        }
        Ok(())
    }

    /// Checks every value once and produces the typed configuration.
    pub fn validate(&self) -> Result<Config, ConfigError> {
        let listen: SocketAddr = self.parse("listen", "127.0.0.1:8080", |s| {
            s.parse()
                .map_err(|_| "must be an address and port, such as 127.0.0.1:8080".into())
        })?;
        let issuer = self.optional("issuer", parse_issuer)?;
        let database = self.parse("database_url", "sqlite://data/tessera.db", parse_database)?;
        let master_key = self.master_key(&database)?;
        let bootstrap_admin = self.bootstrap_admin()?;
        let access_token_ttl = self.seconds("access_token_ttl", 300, 1, 86_400)?;
        let refresh_token_idle_ttl =
            self.seconds("refresh_token_idle_ttl", 1_209_600, 60, u32::MAX)?;
        let refresh_token_absolute_ttl =
            self.seconds("refresh_token_absolute_ttl", 7_776_000, 60, u32::MAX)?;
        if refresh_token_idle_ttl > refresh_token_absolute_ttl {
            return Err(self.invalid(
                "refresh_token_idle_ttl",
                "must not exceed TESSERA_REFRESH_TOKEN_ABSOLUTE_TTL",
            ));
        }
        let refresh_reuse_grace = self.seconds("refresh_reuse_grace", 10, 0, 300)?;
        if refresh_reuse_grace >= refresh_token_idle_ttl {
            return Err(self.invalid(
                "refresh_reuse_grace",
                "must be shorter than TESSERA_REFRESH_TOKEN_IDLE_TTL",
            ));
        }
        let jwks_max_age = self.seconds("jwks_max_age", 300, 0, 86_400)?;
        let key_rotation_interval =
            self.seconds("key_rotation_interval", 2_592_000, 60, u32::MAX)?;
        if key_rotation_interval <= jwks_max_age {
            // The next key is published one rotation ahead; verifiers must see it before it signs.
            return Err(self.invalid(
                "key_rotation_interval",
                "must be longer than TESSERA_JWKS_MAX_AGE, so a new key is published before it signs",
            ));
        }
        let log_format = self.parse("log_format", "", |s| match s {
            "" if std::io::stderr().is_terminal() => Ok(LogFormat::Pretty),
            "" => Ok(LogFormat::Json),
            "json" => Ok(LogFormat::Json),
            "pretty" => Ok(LogFormat::Pretty),
            _ => Err("must be json or pretty".into()),
        })?;
        let log_level = self.parse("log_level", "info", parse_log_level)?;
        Ok(Config {
            listen,
            issuer,
            database: DatabaseConfig {
                url: database,
                max_connections: self.number("database_max_connections", 10, 1, 1_000)?,
                acquire_timeout: self.seconds("database_acquire_timeout", 3, 1, 60)?,
            },
            migrate: self.parse("migrate", "true", parse_bool)?,
            master_key,
            bootstrap_admin,
            signing_alg: self.parse("signing_alg", "ES256", |s| {
                s.parse::<SigningAlg>().map_err(|e| e.to_string())
            })?,
            tokens: TokenPolicy {
                access_token_ttl,
                refresh_token_idle_ttl,
                refresh_token_absolute_ttl,
                refresh_reuse_grace,
            },
            key_rotation_interval,
            jwks_max_age,
            request_timeout: self.seconds("request_timeout", 15, 1, 300)?,
            shutdown_grace: self.seconds("shutdown_grace", 30, 0, 600)?,
            log: LogConfig {
                format: log_format,
                level: log_level,
            },
        })
    }

    fn master_key(&self, database: &DatabaseUrl) -> Result<MasterKeySource, ConfigError> {
        let inline = self.optional("master_key", |s| {
            MasterKey::from_base64(s).map_err(|e| e.to_string())
        })?;
        let file = self.optional("master_key_file", |s| Ok(PathBuf::from(s)))?;
        match (inline, file, database) {
            (Some(_), Some(_), _) => Err(self.invalid(
                "master_key",
                "set either TESSERA_MASTER_KEY or TESSERA_MASTER_KEY_FILE, not both",
            )),
            (Some(key), None, _) => Ok(MasterKeySource::Inline(key)),
            (None, Some(path), _) => MasterKey::read_file(&path)
                .map(|key| MasterKeySource::File(key, path))
                .map_err(|e| self.invalid("master_key_file", &e.to_string())),
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
        let id = self.optional("bootstrap_admin_id", |s| {
            if s.len() <= 128
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
            {
                Ok(s.to_owned())
            } else {
                Err("must be at most 128 characters of A-Z a-z 0-9 - . _ ~".into())
            }
        })?;
        let secret = self.optional("bootstrap_admin_secret", |s| {
            if s.chars().count() >= 16 {
                Ok(SecretString::from(s.to_owned()))
            } else {
                Err("must be at least 16 characters".into())
            }
        })?;
        match (id, secret) {
            (Some(id), Some(secret)) => Ok(Some(BootstrapAdmin { id, secret })),
            (None, None) => Ok(None),
            (Some(_), None) => Err(self.invalid(
                "bootstrap_admin_secret",
                "must be set together with TESSERA_BOOTSTRAP_ADMIN_ID",
            )),
            (None, Some(_)) => Err(self.invalid(
                "bootstrap_admin_id",
                "must be set together with TESSERA_BOOTSTRAP_ADMIN_SECRET",
            )),
        }
    }

    /// The value, or `default` when unset; an empty value counts as unset.
    fn parse<T>(
        &self,
        key: &'static str,
        default: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        match self.values.get(key).filter(|(v, _)| !v.is_empty()) {
            Some((value, source)) => parse(value).map_err(|m| invalid(key, source, &m)),
            None => parse(default).map_err(|m| invalid(key, &Source::Explicit, &m)),
        }
    }

    fn optional<T>(
        &self,
        key: &'static str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        match self.values.get(key).filter(|(v, _)| !v.is_empty()) {
            Some((value, source)) => parse(value).map(Some).map_err(|m| invalid(key, source, &m)),
            None => Ok(None),
        }
    }

    fn number(
        &self,
        key: &'static str,
        default: u32,
        min: u32,
        max: u32,
    ) -> Result<u32, ConfigError> {
        self.parse(key, &default.to_string(), |s| {
            s.parse::<u32>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| format!("must be a whole number from {min} to {max}"))
        })
    }

    fn seconds(
        &self,
        key: &'static str,
        default: u32,
        min: u32,
        max: u32,
    ) -> Result<Duration, ConfigError> {
        self.parse(key, &default.to_string(), |s| {
            s.parse::<u32>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .map(|n| Duration::from_secs(n.into()))
                .ok_or_else(|| format!("must be a whole number of seconds from {min} to {max}"))
        })
    }

    fn invalid(&self, key: &'static str, message: &str) -> ConfigError {
        let source = self
            .values
            .get(key)
            .map_or(Source::Explicit, |(_, source)| source.clone());
        invalid(key, &source, message)
    }
}

/// Kubernetes (for a Service named `tessera`) and Docker links inject `TESSERA_SERVICE_*` and
/// `TESSERA_PORT*` into every container; they are not settings.
fn is_service_link(name: &str) -> bool {
    name.starts_with("TESSERA_SERVICE_")
        || name == "TESSERA_PORT"
        || name.starts_with("TESSERA_PORT_")
}

fn known_key(key: &str) -> Option<&'static str> {
    KEYS.iter().copied().find(|k| *k == key)
}

fn invalid(key: &str, source: &Source, message: &str) -> ConfigError {
    ConfigError::Invalid {
        name: format!("{ENV_PREFIX}{}", key.to_ascii_uppercase()),
        origin: source.to_string(),
        message: message.to_owned(),
    }
}

/// A level, or comma-separated `level` / `target=level` directives. Stricter than tracing's own
/// parser, which takes a misspelt level for a target name and silently logs nothing.
fn parse_log_level(s: &str) -> Result<String, String> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    let valid = s.split(',').all(|directive| {
        let level = directive.rsplit('=').next().unwrap_or_default().trim();
        let target_ok = directive
            .split_once('=')
            .is_none_or(|(target, _)| !target.trim().is_empty());
        target_ok && LEVELS.contains(&level.to_ascii_lowercase().as_str())
    });
    if valid && tracing_subscriber::EnvFilter::try_new(s).is_ok() {
        Ok(s.to_owned())
    } else {
        Err("must be a level (trace, debug, info, warn, error, off) or directives such as tessera=debug,info".into())
    }
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err("must be true or false".into()),
    }
}

/// RFC 8414 §2: the issuer is a URL with no query or fragment; it is the exact `iss` of every token.
fn parse_issuer(s: &str) -> Result<String, String> {
    let url = url::Url::parse(s).map_err(|_| "must be an absolute http or https URL".to_owned())?;
    if !matches!(url.scheme(), "https" | "http") || url.host().is_none() {
        return Err("must be an absolute http or https URL".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment (RFC 8414 §2)".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials".into());
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

fn parse_database(s: &str) -> Result<DatabaseUrl, String> {
    // The URL may carry a password: no error below repeats it.
    if s.starts_with("postgres://") || s.starts_with("postgresql://") {
        let options = PgConnectOptions::from_str(s)
            .map_err(|_| "is not a valid postgres:// URL".to_owned())?;
        Ok(DatabaseUrl::Postgres(Box::new(options)))
    } else if s.starts_with("sqlite:") {
        let options = SqliteConnectOptions::from_str(s)
            .map_err(|_| "is not a valid sqlite:// URL".to_owned())?;
        let path = options.get_filename().to_owned();
        if path.as_os_str().is_empty() || s.contains(":memory:") || s.contains("mode=memory") {
            return Err(
                "must name a database file: an in-memory database loses every key and token".into(),
            );
        }
        Ok(DatabaseUrl::Sqlite {
            options: Box::new(options),
            path,
        })
    } else {
        Err("must start with postgres:// or sqlite://".into())
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
    pub bootstrap_admin: Option<BootstrapAdmin>,
    pub signing_alg: SigningAlg,
    pub tokens: TokenPolicy,
    pub key_rotation_interval: Duration,
    pub jwks_max_age: Duration,
    pub request_timeout: Duration,
    /// How long SIGTERM waits for in-flight requests before closing what is left.
    pub shutdown_grace: Duration,
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
                name: "TESSERA_MASTER_KEY".into(),
                origin: "not set".into(),
                message: "required with PostgreSQL (or TESSERA_MASTER_KEY_FILE): base64 of 32 random bytes, e.g. from `openssl rand -base64 32`".into(),
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
