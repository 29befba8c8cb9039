//! Storage failures, described without SQL text or values. Uses: nothing.

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
    /// Disabling this client would leave no enabled admin client; nothing was changed.
    #[error("the last enabled admin client cannot be disabled")]
    LastAdmin,
    /// A user was to get a role that does not exist; nothing was changed.
    #[error("unknown role")]
    UnknownRole(String),
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
