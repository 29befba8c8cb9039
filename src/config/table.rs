//! The settings table: each setting's key, default, parser (with its range) and meaning, written once. Uses: crypto, model.
//!
//! Loading knows a key only if it is in [`ALL`]; validation reads each value through its row, so
//! the default, the range and the error message come from one place. The tests below hold
//! `config/default.toml` and the README's settings table to this table.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use secrecy::SecretString;
use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;

use super::{DatabaseUrl, LogFormat};
use crate::crypto::MasterKey;
use crate::model::SigningAlg;

/// Variables are this prefix and the key in upper case.
pub(super) const ENV_PREFIX: &str = "TESSERA_";

/// One setting. `T` is what its parser makes of the text.
pub(super) struct Setting<T: 'static> {
    /// The file key; the variable is `TESSERA_` + the key in upper case.
    pub key: &'static str,
    pub default: Initial,
    pub parser: &'static dyn Parser<T>,
    /// What it does, for the README; the accepted range and `constraint` follow in parentheses.
    pub meaning: &'static str,
    /// What else a value must satisfy, in words: its form (checked by the parser) or a rule
    /// across settings (checked by `validate`).
    pub constraint: Option<&'static str>,
}

/// What a setting is when nothing sets it (an empty value counts as unset).
pub(super) enum Initial {
    /// This value, parsed like any other.
    Value(&'static str),
    /// Nothing: the feature is off.
    Unset,
    /// Nothing, and start-up works out what takes its place, as the text says.
    Derived(&'static str),
}

impl<T> Setting<T> {
    /// The environment variable that overrides the key.
    pub fn variable(&self) -> String {
        variable(self.key)
    }
}

pub(super) fn variable(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.to_ascii_uppercase())
}

/// Turns a value's text into `T`, or says in a few words what it must be (never repeating the
/// value: it may be a secret or a URL with a password).
pub(super) trait Parser<T>: Sync {
    fn parse(&self, text: &str) -> Result<T, String>;

    /// The accepted values, for the README, when they fit in a few words.
    fn accepts(&self) -> Option<String> {
        None
    }

    /// A reading aid for a default in the README, such as "(14 days)".
    fn gloss(&self, _default: &str) -> Option<String> {
        None
    }
}

/// A whole number from `min` to `max`.
pub(super) struct Whole {
    pub min: u32,
    pub max: u32,
}

impl Parser<u32> for Whole {
    fn parse(&self, text: &str) -> Result<u32, String> {
        let Self { min, max } = *self;
        text.parse::<u32>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| format!("must be a whole number from {min} to {max}"))
    }

    fn accepts(&self) -> Option<String> {
        Some(range(self.min, self.max))
    }
}

/// A whole number of seconds from `min` to `max`.
pub(super) struct Seconds {
    pub min: u32,
    pub max: u32,
}

impl Parser<Duration> for Seconds {
    fn parse(&self, text: &str) -> Result<Duration, String> {
        let Self { min, max } = *self;
        text.parse::<u32>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .map(|n| Duration::from_secs(n.into()))
            .ok_or_else(|| format!("must be a whole number of seconds from {min} to {max}"))
    }

    fn accepts(&self) -> Option<String> {
        Some(range(self.min, self.max))
    }

    fn gloss(&self, default: &str) -> Option<String> {
        const DAY: u32 = 86_400;
        let seconds = default.parse::<u32>().ok()?;
        match seconds / DAY {
            1 if seconds == DAY => Some("(1 day)".to_owned()),
            days => (days > 1 && seconds % DAY == 0).then(|| format!("({days} days)")),
        }
    }
}

fn range(min: u32, max: u32) -> String {
    if max == u32::MAX {
        format!("≥ {min}")
    } else {
        format!("{min}–{max}")
    }
}

/// `true` or `false`, nothing else.
pub(super) struct Bool;

impl Parser<bool> for Bool {
    fn parse(&self, text: &str) -> Result<bool, String> {
        match text {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err("must be true or false".into()),
        }
    }

    fn accepts(&self) -> Option<String> {
        Some("`true`/`false`".into())
    }
}

/// Any other value: a function whose error says what it expects.
pub(super) struct Text<T>(pub fn(&str) -> Result<T, String>);

impl<T> Parser<T> for Text<T> {
    fn parse(&self, text: &str) -> Result<T, String> {
        (self.0)(text)
    }
}

pub(super) const LISTEN: Setting<SocketAddr> = Setting {
    key: "listen",
    default: Initial::Value("127.0.0.1:8080"),
    parser: &Text(parse_listen),
    meaning: "address to listen on: an IP address and a port, not a host name",
    constraint: None,
};

pub(super) const ISSUER: Setting<String> = Setting {
    key: "issuer",
    default: Initial::Derived("`http://` + the bound address"),
    parser: &Text(parse_issuer),
    meaning: "the `iss` of every token and the base of metadata URLs",
    constraint: Some(
        "an `http` or `https` URL without query, fragment or credentials; a trailing `/` is dropped",
    ),
};

pub(super) const DATABASE_URL: Setting<DatabaseUrl> = Setting {
    key: "database_url",
    default: Initial::Value("sqlite://data/tessera.db"),
    parser: &Text(parse_database),
    meaning: "`sqlite://PATH` or `postgres://…`",
    constraint: None,
};

pub(super) const DATABASE_MAX_CONNECTIONS: Setting<u32> = Setting {
    key: "database_max_connections",
    default: Initial::Value("10"),
    parser: &Whole { min: 1, max: 1_000 },
    meaning: "pool size per instance",
    constraint: None,
};

pub(super) const DATABASE_ACQUIRE_TIMEOUT: Setting<Duration> = Setting {
    key: "database_acquire_timeout",
    default: Initial::Value("3"),
    parser: &Seconds { min: 1, max: 60 },
    meaning: "seconds a request waits for a connection before 503",
    constraint: None,
};

pub(super) const MIGRATE: Setting<bool> = Setting {
    key: "migrate",
    default: Initial::Value("true"),
    parser: &Bool,
    meaning: "apply migrations at start-up",
    constraint: None,
};

pub(super) const MASTER_KEY: Setting<MasterKey> = Setting {
    key: "master_key",
    default: Initial::Derived(
        "generated `master.key` next to the SQLite file; required with PostgreSQL",
    ),
    parser: &Text(parse_master_key),
    meaning: "base64 of 32 bytes; encrypts private signing keys at rest",
    constraint: None,
};

pub(super) const MASTER_KEY_FILE: Setting<PathBuf> = Setting {
    key: "master_key_file",
    default: Initial::Unset,
    parser: &Text(parse_path),
    meaning: "a file holding the same",
    constraint: Some("instead of the variable; setting both is refused"),
};

pub(super) const MASTER_KEY_PREVIOUS: Setting<MasterKey> = Setting {
    key: "master_key_previous",
    default: Initial::Unset,
    parser: &Text(parse_master_key),
    meaning: "the master key being rotated away from: read, never written (docs/operations.md, master-key rotation)",
    constraint: None,
};

pub(super) const BOOTSTRAP_ADMIN_ID: Setting<String> = Setting {
    key: "bootstrap_admin_id",
    default: Initial::Unset,
    parser: &Text(parse_client_id),
    meaning: "an admin client created at start-up if missing",
    constraint: Some("at most 128 of `A-Z a-z 0-9 - . _ ~`; both or neither with the secret"),
};

pub(super) const BOOTSTRAP_ADMIN_SECRET: Setting<SecretString> = Setting {
    key: "bootstrap_admin_secret",
    default: Initial::Unset,
    parser: &Text(parse_admin_secret),
    meaning: "that admin client's secret",
    constraint: Some("at least 16 characters; both or neither with the id"),
};

pub(super) const SIGNING_ALG: Setting<SigningAlg> = Setting {
    key: "signing_alg",
    default: Initial::Value("ES256"),
    parser: &Text(parse_signing_alg),
    meaning: "`ES256`, `EdDSA`, `RS256` or `PS256`",
    constraint: None,
};

pub(super) const ACCESS_TOKEN_TTL: Setting<Duration> = Setting {
    key: "access_token_ttl",
    default: Initial::Value("300"),
    parser: &Seconds {
        min: 1,
        max: 86_400,
    },
    meaning: "access-token lifetime, seconds",
    constraint: None,
};

pub(super) const REFRESH_TOKEN_IDLE_TTL: Setting<Duration> = Setting {
    key: "refresh_token_idle_ttl",
    default: Initial::Value("1209600"),
    parser: &Seconds {
        min: 60,
        max: u32::MAX,
    },
    meaning: "a refresh token unused this long expires, seconds",
    constraint: Some("at most the absolute TTL"),
};

pub(super) const REFRESH_TOKEN_ABSOLUTE_TTL: Setting<Duration> = Setting {
    key: "refresh_token_absolute_ttl",
    default: Initial::Value("7776000"),
    parser: &Seconds {
        min: 60,
        max: u32::MAX,
    },
    meaning: "no session is refreshed past this age, seconds",
    constraint: None,
};

pub(super) const REFRESH_REUSE_GRACE: Setting<Duration> = Setting {
    key: "refresh_reuse_grace",
    default: Initial::Value("10"),
    parser: &Seconds { min: 0, max: 300 },
    meaning: "retry window after a rotation, seconds",
    constraint: Some("shorter than the idle TTL"),
};

pub(super) const REFRESH_BATCH_WAIT_US: Setting<u32> = Setting {
    key: "refresh_batch_wait_us",
    default: Initial::Value("500"),
    parser: &Whole {
        min: 0,
        max: 10_000_000,
    },
    meaning: "PostgreSQL: the longest a refresh rotation waits for others to share its transaction, microseconds (the timer rounds up to its 1 ms tick; above 1000 only for tests that gather known requests)",
    constraint: None,
};

pub(super) const REFRESH_BATCH_SIZE: Setting<u32> = Setting {
    key: "refresh_batch_size",
    default: Initial::Value("64"),
    parser: &Whole { min: 1, max: 1_000 },
    meaning: "PostgreSQL: refresh rotations per transaction at most; 1 turns batching off",
    constraint: None,
};

pub(super) const KEY_ROTATION_INTERVAL: Setting<Duration> = Setting {
    key: "key_rotation_interval",
    default: Initial::Value("2592000"),
    parser: &Seconds {
        min: 60,
        max: u32::MAX,
    },
    meaning: "automatic signing-key rotation, seconds",
    constraint: Some("longer than the JWKS max-age"),
};

pub(super) const JWKS_MAX_AGE: Setting<Duration> = Setting {
    key: "jwks_max_age",
    default: Initial::Value("300"),
    parser: &Seconds {
        min: 0,
        max: 86_400,
    },
    meaning: "`Cache-Control: max-age` of the JWKS, seconds",
    constraint: None,
};

pub(super) const REVOCATION_MAX_STALENESS: Setting<Duration> = Setting {
    key: "revocation_max_staleness",
    default: Initial::Value("30"),
    parser: &Seconds { min: 1, max: 3600 },
    meaning: "introspection and `/readyz` answer 503 when this instance's revocation state could not be refreshed for longer than this, seconds",
    constraint: None,
};

pub(super) const CLIENT_SECRET_MAX_AGE: Setting<Duration> = Setting {
    key: "client_secret_max_age",
    default: Initial::Unset,
    parser: &Seconds {
        min: 60,
        max: u32::MAX,
    },
    meaning: "a generated client secret older than this is refused (401 `invalid_client`, \"client secret expired\") unless its client sets its own `secret_max_age`; unset, secrets do not expire, seconds",
    constraint: None,
};

pub(super) const STATUS_LIST: Setting<bool> = Setting {
    key: "status_list",
    default: Initial::Value("true"),
    parser: &Bool,
    meaning: "access tokens carry a `status` claim and `/statuslists` serves the Token Status Lists",
    constraint: None,
};

pub(super) const STATUS_LIST_TTL: Setting<Duration> = Setting {
    key: "status_list_ttl",
    default: Initial::Value("60"),
    parser: &Seconds { min: 10, max: 3600 },
    meaning: "`ttl` of the status lists and their `Cache-Control: max-age`: a revocation reaches every list within it, seconds",
    constraint: None,
};

pub(super) const AUTHORIZATION_CODE_TTL: Setting<Duration> = Setting {
    key: "authorization_code_ttl",
    default: Initial::Value("60"),
    parser: &Seconds { min: 10, max: 600 },
    meaning: "an authorization code not exchanged this long expires, seconds",
    constraint: None,
};

pub(super) const BROWSER_SESSION_TTL: Setting<Duration> = Setting {
    key: "browser_session_ttl",
    default: Initial::Value("86400"),
    parser: &Seconds {
        min: 60,
        max: 31_536_000,
    },
    meaning: "a browser session (sign-in cookie) ends this long after sign-in, seconds",
    constraint: None,
};

pub(super) const BROWSER_SESSION_IDLE_TTL: Setting<Duration> = Setting {
    key: "browser_session_idle_ttl",
    default: Initial::Value("3600"),
    parser: &Seconds {
        min: 60,
        max: 31_536_000,
    },
    meaning: "a browser session unused this long ends, seconds",
    constraint: Some("at most the browser session TTL"),
};

pub(super) const REQUEST_TIMEOUT: Setting<Duration> = Setting {
    key: "request_timeout",
    default: Initial::Value("15"),
    parser: &Seconds { min: 1, max: 300 },
    meaning: "a request still running after this many seconds gets 503",
    constraint: None,
};

pub(super) const SHUTDOWN_GRACE: Setting<Duration> = Setting {
    key: "shutdown_grace",
    default: Initial::Value("30"),
    parser: &Seconds { min: 0, max: 600 },
    meaning: "seconds SIGTERM waits for in-flight requests",
    constraint: None,
};

pub(super) const TRUSTED_PROXIES: Setting<Vec<ipnet::IpNet>> = Setting {
    key: "trusted_proxies",
    default: Initial::Unset,
    parser: &Text(parse_trusted_proxies),
    meaning: "comma-separated CIDRs of reverse proxies whose `X-Forwarded-For` names the client's address (the right-most entry that is not one of them); the peer address otherwise",
    constraint: None,
};

pub(super) const LOG_FORMAT: Setting<LogFormat> = Setting {
    key: "log_format",
    default: Initial::Derived("`pretty` on a terminal, else `json`"),
    parser: &Text(parse_log_format),
    meaning: "`json` or `pretty`",
    constraint: None,
};

pub(super) const LOG_LEVEL: Setting<String> = Setting {
    key: "log_level",
    default: Initial::Value("info"),
    parser: &Text(parse_log_level),
    meaning: "a tracing filter (`info`, `tessera=debug,info`)",
    constraint: None,
};

/// Every setting, in the README's order. A key missing here is refused as unknown.
pub(super) const ALL: &[&dyn Row] = &[
    &LISTEN,
    &ISSUER,
    &DATABASE_URL,
    &DATABASE_MAX_CONNECTIONS,
    &DATABASE_ACQUIRE_TIMEOUT,
    &MIGRATE,
    &MASTER_KEY,
    &MASTER_KEY_FILE,
    &MASTER_KEY_PREVIOUS,
    &BOOTSTRAP_ADMIN_ID,
    &BOOTSTRAP_ADMIN_SECRET,
    &SIGNING_ALG,
    &ACCESS_TOKEN_TTL,
    &REFRESH_TOKEN_IDLE_TTL,
    &REFRESH_TOKEN_ABSOLUTE_TTL,
    &REFRESH_REUSE_GRACE,
    &REFRESH_BATCH_WAIT_US,
    &REFRESH_BATCH_SIZE,
    &KEY_ROTATION_INTERVAL,
    &JWKS_MAX_AGE,
    &REVOCATION_MAX_STALENESS,
    &CLIENT_SECRET_MAX_AGE,
    &STATUS_LIST,
    &STATUS_LIST_TTL,
    &AUTHORIZATION_CODE_TTL,
    &BROWSER_SESSION_TTL,
    &BROWSER_SESSION_IDLE_TTL,
    &REQUEST_TIMEOUT,
    &SHUTDOWN_GRACE,
    &TRUSTED_PROXIES,
    &LOG_FORMAT,
    &LOG_LEVEL,
];

/// A row of the table whatever its type: what loading, the README and the tests below need.
pub(super) trait Row: Sync {
    fn key(&self) -> &'static str;
    #[cfg(test)]
    fn default(&self) -> &Initial;
    /// Parses `text` and drops the result.
    #[cfg(test)]
    fn check(&self, text: &str) -> Result<(), String>;
    /// The row of the README's settings table.
    fn readme_row(&self) -> String;
}

impl<T> Row for Setting<T> {
    fn key(&self) -> &'static str {
        self.key
    }

    #[cfg(test)]
    fn default(&self) -> &Initial {
        &self.default
    }

    #[cfg(test)]
    fn check(&self, text: &str) -> Result<(), String> {
        self.parser.parse(text).map(drop)
    }

    fn readme_row(&self) -> String {
        let rules: Vec<String> = self
            .parser
            .accepts()
            .into_iter()
            .chain(self.constraint.map(str::to_owned))
            .collect();
        let meaning = match rules.is_empty() {
            true => self.meaning.to_owned(),
            false => format!("{} ({})", self.meaning, rules.join(", ")),
        };
        let default = match self.default {
            Initial::Value(value) => match self.parser.gloss(value) {
                Some(gloss) => format!("`{value}` {gloss}"),
                None => format!("`{value}`"),
            },
            Initial::Unset => "unset".to_owned(),
            Initial::Derived(text) => text.to_owned(),
        };
        format!("| `{}` | {meaning} | {default} |", self.variable())
    }
}

/// The key as the table spells it, if it is one.
pub(super) fn known_key(key: &str) -> Option<&'static str> {
    ALL.iter().map(|row| row.key()).find(|k| *k == key)
}

/// Every setting as a Markdown table (variable, meaning, default): the README's settings table,
/// which a test holds to this one.
pub fn markdown_table() -> String {
    let mut table = String::from("| variable | meaning | default |\n|---|---|---|\n");
    for row in ALL {
        table.push_str(&row.readme_row());
        table.push('\n');
    }
    table
}

/// `10.0.0.0/8, fd00::/8`, or single addresses; a network with host bits set is refused as a
/// likely typo.
fn parse_trusted_proxies(s: &str) -> Result<Vec<ipnet::IpNet>, String> {
    let expected = "must be comma-separated CIDRs, such as 10.0.0.0/8, fd00::/8";
    s.split(',')
        .map(str::trim)
        .map(|entry| {
            let net = match entry.parse::<ipnet::IpNet>() {
                Ok(net) => net,
                Err(_) => entry
                    .parse::<std::net::IpAddr>()
                    .map(ipnet::IpNet::from)
                    .map_err(|_| expected.to_owned())?,
            };
            if net.trunc() != net {
                return Err(format!("{expected} (a network has host bits set)"));
            }
            Ok(net)
        })
        .collect()
}

fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    s.parse()
        .map_err(|_| "must be an address and port, such as 127.0.0.1:8080".into())
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
        Ok(DatabaseUrl::Postgres(Box::new(plain_on_loopback(
            s, options,
        ))))
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

/// Without an `sslmode` in the URL, sqlx negotiates TLS whenever the server offers it
/// (`prefer`). Over the loopback interface that protects nothing (the bytes never leave the
/// host) and costs every statement an encryption on both sides, so there Tessera connects in
/// plain text unless the URL asks for TLS. Any other host keeps sqlx's default.
fn plain_on_loopback(url: &str, options: PgConnectOptions) -> PgConnectOptions {
    let asks = url::Url::parse(url).is_ok_and(|url| {
        url.query_pairs()
            .any(|(key, _)| key == "sslmode" || key == "ssl-mode")
    });
    let host = options.get_host();
    let loopback = host == "localhost"
        || host.starts_with('/')
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback && !asks {
        options.ssl_mode(sqlx::postgres::PgSslMode::Disable)
    } else {
        options
    }
}

fn parse_master_key(s: &str) -> Result<MasterKey, String> {
    MasterKey::from_base64(s).map_err(|e| e.to_string())
}

fn parse_path(s: &str) -> Result<PathBuf, String> {
    Ok(PathBuf::from(s))
}

fn parse_client_id(s: &str) -> Result<String, String> {
    if s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
    {
        Ok(s.to_owned())
    } else {
        Err("must be at most 128 characters of A-Z a-z 0-9 - . _ ~".into())
    }
}

fn parse_admin_secret(s: &str) -> Result<SecretString, String> {
    if s.chars().count() >= 16 {
        Ok(SecretString::from(s.to_owned()))
    } else {
        Err("must be at least 16 characters".into())
    }
}

fn parse_signing_alg(s: &str) -> Result<SigningAlg, String> {
    s.parse::<SigningAlg>().map_err(|e| e.to_string())
}

fn parse_log_format(s: &str) -> Result<LogFormat, String> {
    match s {
        "json" => Ok(LogFormat::Json),
        "pretty" => Ok(LogFormat::Pretty),
        _ => Err("must be json or pretty".into()),
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use super::*;
    use crate::config::DEFAULT_CONFIG_FILE;
    use crate::config::layers::toml_text;

    const BEGIN: &str = "<!-- settings:begin -->";
    const END: &str = "<!-- settings:end -->";

    fn read(file: &str) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn postgres_over_loopback_is_plain_text_unless_the_url_asks_for_tls() {
        use sqlx::postgres::PgSslMode;
        let mode = |url: &str| match parse_database(url) {
            Ok(DatabaseUrl::Postgres(options)) => format!("{:?}", options.get_ssl_mode()),
            _ => panic!("{url} should parse"),
        };
        let plain = format!("{:?}", PgSslMode::Disable);
        let prefer = format!("{:?}", PgSslMode::Prefer);
        for url in [
            "postgres://u@127.0.0.1:5432/db",
            "postgres://u@127.0.0.9/db",
            "postgres://u@localhost/db",
            "postgresql://u@[::1]:5432/db",
        ] {
            assert_eq!(mode(url), plain, "{url}");
        }
        for url in [
            "postgres://u@db.internal:5432/db",
            "postgres://u@10.0.0.5/db",
            "postgres://u@127.0.0.1/db?sslmode=prefer",
        ] {
            assert_eq!(mode(url), prefer, "{url}");
        }
        assert_eq!(
            mode("postgres://u@localhost/db?sslmode=require"),
            format!("{:?}", PgSslMode::Require)
        );
    }

    #[test]
    fn every_row_is_well_formed_and_parses_its_own_default() {
        let mut keys = BTreeSet::new();
        for row in ALL {
            let key = row.key();
            assert!(keys.insert(key), "{key} is in the table twice");
            assert!(
                !key.is_empty() && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{key}: keys are lower-case words joined by _"
            );
            assert!(!row.readme_row().contains("||"), "{key}: an empty cell");
            assert_eq!(
                row.readme_row().matches(" | ").count(),
                2,
                "{key}: a | in a cell"
            );
            if let Initial::Value(value) = row.default() {
                row.check(value)
                    .unwrap_or_else(|e| panic!("{key}: its default {value:?} {e}"));
            }
        }
    }

    #[test]
    fn the_default_file_holds_every_key_with_the_tables_default() {
        let text = read(DEFAULT_CONFIG_FILE);
        let file = toml::Table::from_str(&text).expect("config/default.toml is TOML");
        for (key, value) in &file {
            let row = ALL.iter().find(|row| row.key() == key);
            let row =
                row.unwrap_or_else(|| panic!("{DEFAULT_CONFIG_FILE}: `{key}` is not in the table"));
            let Initial::Value(default) = row.default() else {
                panic!("{DEFAULT_CONFIG_FILE}: `{key}` has no default: write it commented out");
            };
            assert_eq!(
                toml_text(value.clone()).as_deref(),
                Some(*default),
                "{DEFAULT_CONFIG_FILE}: `{key}`"
            );
        }
        // A commented-out example is documentation of a key too: it must be spelt right.
        let commented: BTreeSet<&str> = text
            .lines()
            .filter_map(|line| line.strip_prefix("# ")?.split_once(" = "))
            .map(|(key, _)| key)
            .filter(|key| key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
            .collect();
        for key in &commented {
            assert!(
                known_key(key).is_some(),
                "{DEFAULT_CONFIG_FILE}: `# {key} =` is not in the table"
            );
        }
        for row in ALL {
            let key = row.key();
            match row.default() {
                Initial::Value(_) => assert!(
                    file.contains_key(key),
                    "{DEFAULT_CONFIG_FILE} lacks `{key}`"
                ),
                Initial::Unset | Initial::Derived(_) => assert!(
                    commented.contains(key),
                    "{DEFAULT_CONFIG_FILE} lacks `# {key} = …` (commented out: it has no default)"
                ),
            }
        }
    }

    #[test]
    fn the_readme_settings_table_is_the_table() {
        let readme = read("README.md");
        let expected = markdown_table();
        let found = readme
            .split_once(BEGIN)
            .and_then(|(_, rest)| rest.split_once(END))
            .map(|(table, _)| table.trim());
        assert!(
            found == Some(expected.trim()),
            "README.md's settings table differs from src/config/table.rs; \
             replace it with these lines:\n\n{BEGIN}\n{expected}{END}\n"
        );
    }
}
