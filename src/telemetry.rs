//! Logging: tracing to standard error, as JSON or pretty text. Secrets reach no log line: they are `SecretString`/`MasterKey` (redacted `Debug`), spans record paths without query strings, and SQL text is never logged. Uses: config.

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber. Standard output stays free for what the operator must read
/// (the URL, a first-start admin credential); logs go to standard error.
pub fn init(log: &LogConfig) {
    // sqlx would log statements and slow queries with their SQL text, and axum's rejection
    // traces quote request bodies: the contract forbids both.
    let quiet = "sqlx=off,axum::rejection=off";
    let filter = EnvFilter::try_new(format!("{},{quiet}", log.level))
        .unwrap_or_else(|_| EnvFilter::new(format!("info,{quiet}")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match log.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder.with_target(false).try_init(),
    };
    // A second call (as in tests) keeps the first subscriber.
    let _ = result;
}
