//! Prometheus metrics: names, the recorder, and the exposition rendered for GET /metrics. No label carries a token, a secret, a username or other unbounded input. Uses: nothing.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const TOKENS_ISSUED: &str = "tessera_tokens_issued_total";
pub const REFRESHES: &str = "tessera_refreshes_total";
pub const REFRESH_BATCH_SIZE: &str = "tessera_refresh_batch_size";
pub const REFRESH_REUSE_DETECTED: &str = "tessera_refresh_reuse_detected_total";
pub const AUTHORIZATION_CODE_REUSE_DETECTED: &str =
    "tessera_authorization_code_reuse_detected_total";
pub const REVOCATIONS: &str = "tessera_revocations_total";
pub const TOKEN_ERRORS: &str = "tessera_token_errors_total";
pub const HTTP_REQUEST_DURATION: &str = "tessera_http_request_duration_seconds";
pub const ARGON2_QUEUE_DEPTH: &str = "tessera_argon2_queue_depth";
pub const ARGON2_WAIT: &str = "tessera_argon2_wait_seconds";
pub const CREDENTIAL_CACHE: &str = "tessera_credential_cache_total";
pub const DB_POOL_CONNECTIONS: &str = "tessera_db_pool_connections";
pub const CLIENT_SECRETS_EXPIRING_SOON: &str = "tessera_client_secrets_expiring_soon";
pub const CLIENT_SECRETS_EXPIRED: &str = "tessera_client_secrets_expired";
pub const CLIENTS_UNUSED: &str = "tessera_clients_unused";

/// The client hygiene gauges of one instance, in the text exposition format. They are written
/// from the instance's own counts rather than through the process-wide recorder, so that
/// several servers in one process (as in tests) each show their own.
pub fn render_hygiene(secrets_expiring_soon: u64, secrets_expired: u64, unused: u64) -> String {
    let gauges = [
        (
            CLIENT_SECRETS_EXPIRING_SOON,
            "Enabled clients whose generated secret expires within 7 days",
            secrets_expiring_soon,
        ),
        (
            CLIENT_SECRETS_EXPIRED,
            "Enabled clients whose generated secret has expired (they cannot authenticate)",
            secrets_expired,
        ),
        (
            CLIENTS_UNUSED,
            "Enabled clients not used (or, never used, created) for 30 days",
            unused,
        ),
    ];
    gauges
        .iter()
        .map(|(name, help, value)| {
            format!("# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n")
        })
        .collect()
}

/// How often [`run_upkeep`] drains the histograms.
pub const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Drains the recorded histogram samples into their buckets every [`UPKEEP_INTERVAL`], until
/// aborted. The recorder keeps every sample (8 bytes each, one per request for the latency
/// histogram) until a drain, and only a scrape of `/metrics` drains otherwise: without this, a
/// server nobody scrapes grows by about 25 MiB an hour at 800 requests/s.
pub async fn run_upkeep() {
    let handle = handle();
    let mut ticker = tokio::time::interval(UPKEEP_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        handle.run_upkeep();
    }
}

/// The process-wide recorder, installed once (several servers in one process, as in tests,
/// share it).
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let latency = [
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ];
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(HTTP_REQUEST_DURATION.into()), &latency)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full(ARGON2_WAIT.into()), &latency))
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(REFRESH_BATCH_SIZE.into()),
                        &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0],
                    )
                })
                .expect("valid buckets");
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed by an embedder; then ours only renders.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            handle
        })
        .clone()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        TOKENS_ISSUED,
        "Access tokens issued, by grant and client kind"
    );
    describe_counter!(REFRESHES, "Refresh attempts, by outcome");
    describe_histogram!(
        REFRESH_BATCH_SIZE,
        "Refresh rotations per PostgreSQL transaction (group commit)"
    );
    describe_counter!(
        REFRESH_REUSE_DETECTED,
        "Consumed refresh tokens presented again (sessions revoked)"
    );
    describe_counter!(
        AUTHORIZATION_CODE_REUSE_DETECTED,
        "Used authorization codes presented again (their sessions revoked)"
    );
    describe_counter!(REVOCATIONS, "Revocations, by selector");
    describe_counter!(TOKEN_ERRORS, "Token endpoint errors, by OAuth error code");
    describe_histogram!(
        HTTP_REQUEST_DURATION,
        metrics::Unit::Seconds,
        "Request latency, by route and status"
    );
    describe_gauge!(
        ARGON2_QUEUE_DEPTH,
        "Password hashes running or waiting for a hashing thread"
    );
    describe_histogram!(
        ARGON2_WAIT,
        metrics::Unit::Seconds,
        "Time a password hash waited for a hashing thread"
    );
    describe_counter!(
        CREDENTIAL_CACHE,
        "Client lookups in the in-memory registry, by result"
    );
    describe_gauge!(DB_POOL_CONNECTIONS, "Database pool connections, by state");
}
