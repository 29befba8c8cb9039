//! Raw settings in layers (`config/default.toml`, `--config FILE`, the `TESSERA_*` variables, each overriding the one before), kept as text; only the table's keys are accepted. Uses: nothing.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::ConfigError;
use super::table::{ENV_PREFIX, Initial, Setting, known_key, variable};

/// Variables under this prefix belong to the test suite, not to the server.
const TEST_ENV_PREFIX: &str = "TESSERA_TEST_";
pub const DEFAULT_CONFIG_FILE: &str = "config/default.toml";

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
            let Some(text) = toml_text(value) else {
                return Err(invalid(
                    known,
                    &source,
                    "must be a string, a whole number or a boolean",
                ));
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

    /// The value parsed by its row, or its parsed default when unset (an empty value counts as
    /// unset); `None` when unset without a default.
    pub(super) fn get<T>(&self, setting: &Setting<T>) -> Result<Option<T>, ConfigError> {
        debug_assert!(
            known_key(setting.key).is_some(),
            "{} is missing from the table's list",
            setting.key
        );
        let (text, source) = match self.values.get(setting.key).filter(|(v, _)| !v.is_empty()) {
            Some((value, source)) => (value.as_str(), source),
            None => match setting.default {
                Initial::Value(default) => (default, &Source::Explicit),
                _ => return Ok(None),
            },
        };
        let value = setting.parser.parse(text);
        value
            .map(Some)
            .map_err(|m| invalid(setting.key, source, &m))
    }

    /// The value of a setting that has a default.
    pub(super) fn value<T>(&self, setting: &Setting<T>) -> Result<T, ConfigError> {
        let value = self.get(setting)?;
        Ok(value.unwrap_or_else(|| panic!("{} has no default in the table", setting.key)))
    }

    /// An error for a rule across settings, naming `setting` and where its value came from.
    pub(super) fn invalid<T>(&self, setting: &Setting<T>, message: &str) -> ConfigError {
        let source = self
            .values
            .get(setting.key)
            .map_or(Source::Explicit, |(_, source)| source.clone());
        invalid(setting.key, &source, message)
    }
}

/// A file's value as the text an environment variable would carry; `None` for other TOML types.
pub(super) fn toml_text(value: toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Kubernetes (for a Service named `tessera`) and Docker links inject `TESSERA_SERVICE_*` and
/// `TESSERA_PORT*` into every container; they are not settings.
fn is_service_link(name: &str) -> bool {
    name.starts_with("TESSERA_SERVICE_")
        || name == "TESSERA_PORT"
        || name.starts_with("TESSERA_PORT_")
}

fn invalid(key: &str, source: &Source, message: &str) -> ConfigError {
    ConfigError::Invalid {
        name: variable(key),
        origin: source.to_string(),
        message: message.to_owned(),
    }
}
