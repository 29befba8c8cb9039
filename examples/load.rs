//! Load generator for `POST /token` and `POST /introspect`, and a mix of every endpoint: a real
//! HTTP client (reqwest, keep-alive), a fixed number of worker tasks, a warm-up, then a timed
//! run; prints requests/s, latency percentiles and the answers that were not 2xx.
//! `scripts/load.sh` runs the `/token` measurement, `scripts/refresh_load.sh` the refresh one,
//! `scripts/introspect_load.sh` the introspection one, `scripts/soak.sh` the memory soak.
//!
//! ```sh
//! cargo run --release --example load -- --url http://127.0.0.1:8080 \
//!     --scenario client-credentials --client-id ID --client-secret SECRET \
//!     --concurrency 32 --warmup 3 --duration 10 [--rate 5000]
//! cargo run --release --example load -- --scenario refresh --client-id ID --client-secret SECRET \
//!     --username USER --password PASSWORD --concurrency 32
//! cargo run --release --example load -- --scenario introspect --client-id ID --client-secret SECRET
//! cargo run --release --example load -- --scenario mixed --client-id ID --client-secret SECRET \
//!     --username USER --password PASSWORD --rate 800 --warmup 0 --duration 1800
//! cargo run --release --example load -- --scenario argon2-bare --duration 5
//! ```
//!
//! `refresh`: every worker holds its own session. Before the warm-up each one logs in once
//! (password grant, so argon2id stays out of the measured window) and then refreshes in a chain,
//! each request presenting the refresh token the previous answer returned. A 2xx without a
//! refresh token counts as a bad answer; after a transport error or a 5xx the worker presents
//! the same token again (the server's retry window hands back the successor if the first
//! attempt did rotate); after a 4xx the chain is broken and the worker logs in again (counted as
//! a re-login, its request time not recorded).
//!
//! `mixed` (the soak of `scripts/soak.sh`): every worker opens a session like `refresh`, then
//! goes through a fixed cycle ([`MIX`]): client_credentials tokens, the next refresh of its
//! chain, introspection of its live access token (the last refresh's), revocation (POST
//! /revoke) of the access token of its last client_credentials answer, JWKS; one request in
//! [`SESSION_REVOKE_EVERY`] revokes its refresh token (the session with it) and logs in again.
//! Any answer but the expected 2xx is an error (a revocation answers 200 `{}`).
//!
//! `introspect`: one live access token is obtained once with `client_credentials` (the same
//! client, which must also be allowed to introspect) unless `--token` is given; every request
//! then introspects it, and an answer without `"active":true` counts as a bad answer.
//!
//! Latency is measured per request, from just before it is sent to the last byte of the answer,
//! and kept as microseconds; percentiles are nearest-rank over the timed run only. With `--rate`
//! the workers share one schedule (request n is due at n / rate seconds): a request is never
//! sent early, and how late requests left against that schedule is printed as "schedule lag"
//! (large lag means the server or the generator could not keep the rate).
//!
//! The last line of the output is machine-readable: `RESULT key=value ...`.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use clap::{Parser, ValueEnum};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use tessera::crypto::secrets::{ARGON2_ITERATIONS, ARGON2_LANES, ARGON2_MEMORY_KIB};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// POST /token grant_type=client_credentials, client authenticated with HTTP Basic.
    ClientCredentials,
    /// POST /token grant_type=password, client with HTTP Basic, user in the form.
    Password,
    /// POST /token grant_type=refresh_token, one session per worker, refreshing in a chain.
    Refresh,
    /// POST /introspect of one live access token, client authenticated with HTTP Basic.
    Introspect,
    /// The soak mix (scripts/soak.sh): client_credentials tokens, refresh chains,
    /// introspection of live tokens, revocations of access and refresh tokens, JWKS.
    Mixed,
    /// No HTTP: argon2id verifications with the server's parameters, in one thread.
    Argon2Bare,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Self::ClientCredentials => "client-credentials",
            Self::Password => "password",
            Self::Refresh => "refresh",
            Self::Introspect => "introspect",
            Self::Mixed => "mixed",
            Self::Argon2Bare => "argon2-bare",
        }
    }
}

#[derive(Debug, Parser)]
#[command(about = "Load generator for Tessera's POST /token and POST /introspect")]
struct Args {
    /// Base URL of the server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    #[arg(long, value_enum, default_value = "client-credentials")]
    scenario: Scenario,
    /// Worker tasks, each with at most one request in flight (and its own keep-alive connection).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Seconds of warm-up (requests sent, not recorded).
    #[arg(long, default_value_t = 3.0)]
    warmup: f64,
    /// Seconds of the timed run.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Fixed target rate in requests/s across all workers; without it, as fast as possible.
    #[arg(long)]
    rate: Option<f64>,
    /// Runtime threads of the generator (1: a current-thread runtime).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    #[arg(long)]
    client_id: Option<String>,
    #[arg(long)]
    client_secret: Option<String>,
    #[arg(long)]
    username: Option<String>,
    #[arg(long)]
    password: Option<String>,
    /// `scope` form parameter (omitted if unset).
    #[arg(long)]
    scope: Option<String>,
    /// `resource` form parameter (omitted if unset).
    #[arg(long)]
    resource: Option<String>,
    /// introspect: the access token to introspect (default: one obtained with
    /// client_credentials by the same client before the run).
    #[arg(long)]
    token: Option<String>,
    /// refresh: logins in flight at once while the workers open their sessions.
    #[arg(long, default_value_t = 4)]
    login_concurrency: usize,
    /// PID of the server, to report its CPU time over the timed run (Linux /proc).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Per-request timeout, seconds.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let checked = check(&args);
    if let Err(message) = checked {
        eprintln!("load: {message}");
        return ExitCode::from(2);
    }
    if args.scenario == Scenario::Argon2Bare {
        argon2_bare(&args);
        return ExitCode::SUCCESS;
    }
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    }
    .expect("a tokio runtime");
    match runtime.block_on(http_load(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("load: {message}");
            ExitCode::FAILURE
        }
    }
}

/// A finite number above zero (NaN and infinity would make no duration).
fn positive(x: f64) -> bool {
    x.is_finite() && x > 0.0
}

fn check(args: &Args) -> Result<(), String> {
    if !positive(args.duration)
        || !(args.warmup == 0.0 || positive(args.warmup))
        || !positive(args.timeout)
    {
        return Err("--duration and --timeout must be > 0, --warmup >= 0".into());
    }
    if args.scenario == Scenario::Argon2Bare {
        return Ok(());
    }
    if args.concurrency == 0 {
        return Err("--concurrency must be at least 1".into());
    }
    if let Some(rate) = args.rate
        && !positive(rate)
    {
        return Err("--rate must be > 0".into());
    }
    if args.client_id.is_none() || args.client_secret.is_none() {
        return Err("--client-id and --client-secret are required".into());
    }
    if matches!(
        args.scenario,
        Scenario::Password | Scenario::Refresh | Scenario::Mixed
    ) && (args.username.is_none() || args.password.is_none())
    {
        return Err(format!(
            "--username and --password are required for --scenario {}",
            args.scenario.name()
        ));
    }
    if args.login_concurrency == 0 {
        return Err("--login-concurrency must be at least 1".into());
    }
    Ok(())
}

/// Everything a worker needs; shared read-only.
struct Plan {
    client: reqwest::Client,
    scenario: Scenario,
    /// Where every request goes: `/token`, or `/introspect`.
    endpoint: String,
    authorization: HeaderValue,
    /// The body of every request, except with `refresh`, whose body names the worker's token.
    body: bytes::Bytes,
    /// refresh: the `scope` sent with every refresh (if set).
    scope: Option<String>,
    /// refresh, mixed: how a worker whose chain broke opens a new session.
    login: Option<Login>,
    /// mixed: the other endpoints and bodies.
    mix: Option<Mix>,
    /// Seconds between two scheduled requests (across all workers), with --rate.
    interval: Option<f64>,
    start: Instant,
    measure_from: Instant,
    end: Instant,
}

#[derive(Default)]
struct Stats {
    /// Latency of every request recorded, microseconds.
    latency_us: Vec<u32>,
    /// With --rate: how late each recorded request left against its schedule, microseconds.
    lag_us: Vec<u32>,
    ok: u64,
    /// Answers that were 2xx but not what the scenario expects (no refresh token; an inactive
    /// token at introspection). Not counted in `ok`.
    bad_answers: u64,
    /// Answers that were not 2xx, by status.
    statuses: BTreeMap<u16, u64>,
    /// Requests that got no complete answer (connection error, timeout).
    transport_errors: u64,
    /// refresh: sessions opened again during the run because a chain broke; mixed: after
    /// revoking the session's refresh token.
    relogins: u64,
    /// mixed: 2xx by operation.
    by_op: BTreeMap<&'static str, u64>,
    first_failure: Option<String>,
}

/// The password grant of the `refresh` scenario: opens a session, returns its refresh token.
#[derive(Clone)]
struct Login {
    client: reqwest::Client,
    token_url: String,
    authorization: HeaderValue,
    body: bytes::Bytes,
}

/// The fields of a token answer the generator needs.
#[derive(Default, serde::Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    refresh_token: Option<String>,
}

/// The field of an introspection answer the generator checks.
#[derive(serde::Deserialize)]
struct IntrospectionAnswer {
    active: bool,
}

impl Login {
    /// One login; a 503 (argon2id busy) or 429 is retried after a pause, up to 20 times. The
    /// answer holds a refresh token.
    async fn session(&self) -> Result<TokenAnswer, String> {
        let mut pause = Duration::from_millis(100);
        for _ in 0..20 {
            let response = self
                .client
                .post(&self.token_url)
                .header(AUTHORIZATION, self.authorization.clone())
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(self.body.clone())
                .send()
                .await
                .map_err(|e| format!("login request to {}: {e}", self.token_url))?;
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            if status.is_success() {
                return serde_json::from_str::<TokenAnswer>(&text)
                    .ok()
                    .filter(|answer| answer.refresh_token.is_some())
                    .ok_or_else(|| {
                        format!(
                            "login answered {status} without a refresh_token (may the client use the refresh_token grant?): {}",
                            text.chars().take(300).collect::<String>()
                        )
                    });
            }
            if status.as_u16() != 503 && status.as_u16() != 429 {
                return Err(format!(
                    "login answered {status}: {}",
                    text.chars().take(300).collect::<String>()
                ));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
        Err("login: still refused (503/429) after 20 attempts".into())
    }
}

/// Opens one session per worker, `parallel` logins at a time.
async fn open_sessions(
    login: &Login,
    count: usize,
    parallel: usize,
) -> Result<Vec<TokenAnswer>, String> {
    let mut tasks = tokio::task::JoinSet::new();
    let mut tokens = Vec::with_capacity(count);
    let mut started = 0;
    while tokens.len() < count {
        while started < count && tasks.len() < parallel {
            let login = login.clone();
            tasks.spawn(async move { login.session().await });
            started += 1;
        }
        match tasks.join_next().await {
            Some(Ok(result)) => tokens.push(result?),
            Some(Err(e)) => return Err(format!("a login task failed: {e}")),
            None => break,
        }
    }
    Ok(tokens)
}

/// One request before the run: a wrong credential or URL stops here with the server's answer.
async fn preflight(
    client: &reqwest::Client,
    url: &str,
    authorization: &HeaderValue,
    body: bytes::Bytes,
) -> Result<String, String> {
    let response = client
        .post(url)
        .header(AUTHORIZATION, authorization.clone())
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .map_err(|e| format!("preflight request to {url}: {e}"))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if !status.is_success() {
        return Err(format!(
            "preflight request to {url} answered {status}: {}",
            text.chars().take(300).collect::<String>()
        ));
    }
    Ok(text)
}

async fn http_load(args: &Args) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .pool_idle_timeout(Duration::from_secs(300))
        .tcp_nodelay(true)
        .timeout(Duration::from_secs_f64(args.timeout))
        .build()
        .map_err(|e| format!("building the HTTP client: {e}"))?;
    let base = args.url.trim_end_matches('/');
    let token_url = format!("{base}/token");
    let authorization = basic_auth(
        args.client_id.as_deref().unwrap_or_default(),
        args.client_secret.as_deref().unwrap_or_default(),
    );

    let mut sessions: Vec<TokenAnswer> = std::iter::repeat_with(TokenAnswer::default)
        .take(args.concurrency)
        .collect();
    let mut login = None;
    let mut mix = None;
    let mut setup_note = None;
    let (endpoint, body) = match args.scenario {
        Scenario::ClientCredentials | Scenario::Password => {
            let body = form_body(args);
            let text = preflight(&client, &token_url, &authorization, body.clone()).await?;
            if !text.contains("\"access_token\"") {
                return Err(format!(
                    "preflight request to {token_url} answered without an access_token: {}",
                    text.chars().take(300).collect::<String>()
                ));
            }
            (token_url.clone(), body)
        }
        Scenario::Refresh | Scenario::Mixed => {
            if args.scenario == Scenario::Mixed {
                let plan = Mix::new(base, args);
                preflight(&client, &token_url, &authorization, plan.token_body.clone()).await?;
                mix = Some(plan);
            }
            let opener = Login {
                client: client.clone(),
                token_url: token_url.clone(),
                authorization: authorization.clone(),
                body: form_body(args),
            };
            // Before the warm-up: the logins' argon2id stays out of the measured window.
            let began = Instant::now();
            let tokens = open_sessions(&opener, args.concurrency, args.login_concurrency).await?;
            setup_note = Some(format!(
                "sessions      {} opened by password logins before the warm-up in {:.2} s ({} at a time)",
                tokens.len(),
                began.elapsed().as_secs_f64(),
                args.login_concurrency
            ));
            sessions = tokens;
            login = Some(opener);
            (token_url.clone(), bytes::Bytes::new())
        }
        Scenario::Introspect => {
            let token = match &args.token {
                Some(token) => token.clone(),
                None => {
                    let text =
                        preflight(&client, &token_url, &authorization, form_body(args)).await?;
                    serde_json::from_str::<TokenAnswer>(&text)
                        .ok()
                        .and_then(|answer| answer.access_token)
                        .ok_or_else(|| {
                            format!(
                                "client_credentials at {token_url} answered without an access_token: {}",
                                text.chars().take(300).collect::<String>()
                            )
                        })?
                }
            };
            let introspect_url = format!("{base}/introspect");
            let body = introspect_body(&token);
            let text = preflight(&client, &introspect_url, &authorization, body.clone()).await?;
            if !serde_json::from_str::<IntrospectionAnswer>(&text).is_ok_and(|a| a.active) {
                return Err(format!(
                    "the token to introspect is not active: {}",
                    text.chars().take(300).collect::<String>()
                ));
            }
            setup_note = Some(format!(
                "token         one live access token ({} bytes) introspected by every request",
                token.len()
            ));
            (introspect_url, body)
        }
        Scenario::Argon2Bare => unreachable!("no HTTP in argon2-bare"),
    };

    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let plan = Arc::new(Plan {
        client,
        scenario: args.scenario,
        endpoint,
        authorization,
        body,
        scope: args.scope.clone(),
        login,
        mix,
        interval: args.rate.map(|rate| 1.0 / rate),
        start,
        measure_from,
        end: measure_from + Duration::from_secs_f64(args.duration),
    });
    let tickets = Arc::new(AtomicU64::new(0));
    let capacity = match args.rate {
        Some(rate) => (rate * args.duration / args.concurrency as f64) as usize + 16,
        None => 4096,
    };
    let workers: Vec<_> = sessions
        .into_iter()
        .map(|session| {
            let (plan, tickets) = (Arc::clone(&plan), Arc::clone(&tickets));
            if plan.mix.is_some() {
                tokio::spawn(mixed_worker(plan, tickets, capacity, session))
            } else {
                tokio::spawn(worker(plan, tickets, capacity, session.refresh_token))
            }
        })
        .collect();
    // CPU time over the timed run, of this process (is the generator the bottleneck?) and, with
    // --server-pid, of the server (its tokens per CPU-second do not depend on neighbours).
    tokio::time::sleep_until(measure_from.into()).await;
    let before = CpuSample::take(args.server_pid);
    tokio::time::sleep_until(plan.end.into()).await;
    let after = CpuSample::take(args.server_pid);
    let mut total = Stats::default();
    for handle in workers {
        let stats = handle.await.map_err(|e| format!("a worker failed: {e}"))?;
        total.latency_us.extend_from_slice(&stats.latency_us);
        total.lag_us.extend_from_slice(&stats.lag_us);
        total.ok += stats.ok;
        total.bad_answers += stats.bad_answers;
        total.relogins += stats.relogins;
        for (op, n) in stats.by_op {
            *total.by_op.entry(op).or_default() += n;
        }
        total.transport_errors += stats.transport_errors;
        for (status, n) in stats.statuses {
            *total.statuses.entry(status).or_default() += n;
        }
        if total.first_failure.is_none() {
            total.first_failure = stats.first_failure;
        }
    }
    if let Some(note) = setup_note {
        println!("{note}");
    }
    report(args, total, before.usage(&after));
    Ok(())
}

/// CPU time used so far by the threads of this process and of the server, nanoseconds.
struct CpuSample {
    at: Instant,
    own: Option<u64>,
    server: Option<u64>,
    server_faults: Option<u64>,
}

/// Fractions of one core over an interval.
#[derive(Default)]
struct Usage {
    generator: Option<f64>,
    server: Option<f64>,
    /// Minor page faults of the server (fresh memory touched) over the interval.
    server_faults: Option<u64>,
}

impl CpuSample {
    fn take(server_pid: Option<u32>) -> Self {
        Self {
            at: Instant::now(),
            own: tasks_cpu_ns("/proc/self/task"),
            server: server_pid.and_then(|pid| tasks_cpu_ns(&format!("/proc/{pid}/task"))),
            server_faults: server_pid.and_then(minor_faults),
        }
    }

    fn usage(&self, later: &Self) -> Usage {
        let wall = (later.at - self.at).as_secs_f64();
        let share = |a: Option<u64>, b: Option<u64>| {
            a.zip(b)
                .map(|(a, b)| b.saturating_sub(a) as f64 / 1e9 / wall)
        };
        Usage {
            generator: share(self.own, later.own),
            server: share(self.server, later.server),
            server_faults: self
                .server_faults
                .zip(later.server_faults)
                .map(|(a, b)| b.saturating_sub(a)),
        }
    }
}

/// The CPU time of every live thread under a /proc/PID/task directory, nanoseconds (Linux
/// schedstat: precise, but threads that exited in between are not counted).
fn tasks_cpu_ns(dir: &str) -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(dir).ok()? {
        total += thread_cpu_ns(&task.ok()?.path().join("schedstat"))?;
    }
    Some(total)
}

/// Minor page faults of a process so far, all its threads, also exited ones (/proc/PID/stat
/// field 10, counted after the parenthesised command name).
fn minor_faults(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, fields) = stat.rsplit_once(')')?;
    fields.split_whitespace().nth(7)?.parse().ok()
}

fn thread_cpu_ns(schedstat: &std::path::Path) -> Option<u64> {
    std::fs::read_to_string(schedstat)
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// What an answer means for the worker's chain.
enum Outcome {
    /// 2xx as expected; with `refresh`, the token to present next.
    Ok(Option<String>),
    /// 2xx but not the answer the scenario expects.
    Bad(String),
    /// Not 2xx.
    Status(reqwest::StatusCode, String),
    Transport(String),
}

fn judge(scenario: Scenario, status: reqwest::StatusCode, body: &[u8]) -> Outcome {
    let text = || {
        String::from_utf8_lossy(body)
            .chars()
            .take(200)
            .collect::<String>()
    };
    if !status.is_success() {
        return Outcome::Status(status, text());
    }
    match scenario {
        Scenario::Refresh => match serde_json::from_slice::<TokenAnswer>(body) {
            Ok(TokenAnswer {
                refresh_token: Some(next),
                ..
            }) => Outcome::Ok(Some(next)),
            _ => Outcome::Bad(format!("{status} without a refresh_token: {}", text())),
        },
        Scenario::Introspect => match serde_json::from_slice::<IntrospectionAnswer>(body) {
            Ok(IntrospectionAnswer { active: true }) => Outcome::Ok(None),
            _ => Outcome::Bad(format!("{status} but not active: {}", text())),
        },
        _ => Outcome::Ok(None),
    }
}

/// Waits for the worker's next turn: with --rate, the next due time of the shared schedule
/// (returned as `Some(Some(due))`); `None` once the run is over.
async fn next_turn(plan: &Plan, tickets: &AtomicU64) -> Option<Option<Instant>> {
    let Some(interval) = plan.interval else {
        return Some(None);
    };
    let n = tickets.fetch_add(1, Ordering::Relaxed);
    let due = plan.start + Duration::from_secs_f64(n as f64 * interval);
    if due >= plan.end {
        return None;
    }
    tokio::time::sleep_until(due.into()).await;
    Some(Some(due))
}

/// Sends one request and reads the whole answer.
async fn exchange(
    request: reqwest::RequestBuilder,
) -> Result<(reqwest::StatusCode, bytes::Bytes), String> {
    let response = request.send().await.map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| e.to_string())?;
    Ok((status, body))
}

impl Stats {
    /// Records the latency (and schedule lag) of a request sent at `sent` and answered at
    /// `done`, if it falls in the timed run; returns whether it did.
    fn record(&mut self, plan: &Plan, due: Option<Instant>, sent: Instant, done: Instant) -> bool {
        let recorded = sent >= plan.measure_from && done <= plan.end;
        if recorded {
            self.latency_us.push(micros(done - sent));
            if let Some(due) = due {
                self.lag_us
                    .push(micros(sent.saturating_duration_since(due)));
            }
        }
        recorded
    }

    /// Opens a new session for a worker whose chain ended; `None` (the worker stops) if the
    /// login failed.
    async fn relogin(&mut self, login: &Login) -> Option<TokenAnswer> {
        match login.session().await {
            Ok(tokens) => {
                self.relogins += 1;
                Some(tokens)
            }
            Err(e) => {
                if self.first_failure.is_none() {
                    self.first_failure = Some(format!("re-login failed, worker stopped: {e}"));
                }
                None
            }
        }
    }

    /// Counts an outcome of a recorded request other than a good answer; returns its text.
    fn failed(&mut self, recorded: bool, outcome: Outcome) -> Option<String> {
        let failure = match outcome {
            Outcome::Ok(_) => return None,
            Outcome::Bad(text) => {
                if recorded {
                    self.bad_answers += 1;
                }
                text
            }
            Outcome::Status(status, text) => {
                if recorded {
                    *self.statuses.entry(status.as_u16()).or_default() += 1;
                }
                format!("{status}: {text}")
            }
            Outcome::Transport(e) => {
                if recorded {
                    self.transport_errors += 1;
                }
                format!("transport error: {e}")
            }
        };
        if recorded && self.first_failure.is_none() {
            self.first_failure = Some(failure.clone());
        }
        Some(failure)
    }
}

/// What an answer of the `mixed` scenario means, with the tokens of a good `/token` answer
/// (client_credentials: an access token; refresh: both).
fn judge_mixed(
    op: MixOp,
    status: reqwest::StatusCode,
    body: &[u8],
) -> (Outcome, Option<TokenAnswer>) {
    let scenario = match op {
        MixOp::Token | MixOp::Refresh => {
            let tokens = serde_json::from_slice::<TokenAnswer>(body).ok();
            let complete = tokens.as_ref().is_some_and(|t| {
                t.access_token.is_some() && (op == MixOp::Token || t.refresh_token.is_some())
            });
            if status.is_success() && !complete {
                let text = String::from_utf8_lossy(body)
                    .chars()
                    .take(200)
                    .collect::<String>();
                let what = if op == MixOp::Token {
                    "an access token"
                } else {
                    "both tokens"
                };
                return (
                    Outcome::Bad(format!("{status} without {what}: {text}")),
                    None,
                );
            }
            return (
                judge(Scenario::ClientCredentials, status, body),
                tokens.filter(|_| status.is_success()),
            );
        }
        MixOp::Introspect => Scenario::Introspect,
        MixOp::RevokeAccess | MixOp::RevokeSession | MixOp::Jwks => Scenario::ClientCredentials,
    };
    (judge(scenario, status, body), None)
}

async fn worker(
    plan: Arc<Plan>,
    tickets: Arc<AtomicU64>,
    capacity: usize,
    mut session: Option<String>,
) -> Stats {
    let mut stats = Stats {
        latency_us: Vec::with_capacity(capacity),
        lag_us: Vec::with_capacity(if plan.interval.is_some() { capacity } else { 0 }),
        ..Stats::default()
    };
    while let Some(due) = next_turn(&plan, &tickets).await {
        let body = match &session {
            Some(token) => refresh_body(token, plan.scope.as_deref()),
            None => plan.body.clone(),
        };
        let sent = Instant::now();
        if sent >= plan.end {
            break;
        }
        let request = plan
            .client
            .post(&plan.endpoint)
            .header(AUTHORIZATION, plan.authorization.clone())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body);
        let outcome = match exchange(request).await {
            Ok((status, body)) => judge(plan.scenario, status, &body),
            Err(e) => Outcome::Transport(e),
        };
        let recorded = stats.record(&plan, due, sent, Instant::now());
        // The chain goes on whether or not the request was recorded. A 4xx ends a refresh
        // chain (invalid_grant: consumed, revoked, expired); a 5xx may not have rotated, and a
        // retry inside the window is answered anyway.
        let broken = matches!(&outcome, Outcome::Status(status, _) if status.is_client_error());
        if let Outcome::Ok(next) = &outcome {
            if next.is_some() {
                session.clone_from(next);
            }
            if recorded {
                stats.ok += 1;
            }
        }
        stats.failed(recorded, outcome);
        if broken && let (Some(_), Some(login)) = (&session, &plan.login) {
            match stats.relogin(login).await {
                Some(tokens) => session = tokens.refresh_token,
                None => break,
            }
        }
    }
    stats
}

/// One request of the `mixed` scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MixOp {
    /// POST /token, client_credentials; its access token is kept to be revoked.
    Token,
    /// POST /token, refresh_token: the next link of the worker's chain.
    Refresh,
    /// POST /introspect of the worker's live access token (from its last refresh): active.
    Introspect,
    /// POST /revoke of the access token of the worker's last client_credentials answer.
    RevokeAccess,
    /// POST /revoke of the worker's refresh token (its session with it), then a new login.
    RevokeSession,
    /// GET /.well-known/jwks.json.
    Jwks,
}

impl MixOp {
    fn name(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::Refresh => "refresh",
            Self::Introspect => "introspect",
            Self::RevokeAccess => "revoke_access",
            Self::RevokeSession => "revoke_session",
            Self::Jwks => "jwks",
        }
    }
}

/// The cycle each `mixed` worker goes through: 25% client_credentials, 25% refresh, 25%
/// introspection, 10% access-token revocations, 15% JWKS; one request in
/// [`SESSION_REVOKE_EVERY`] revokes the session instead (a refresh token, then a login).
const MIX: [MixOp; 20] = {
    use MixOp::{Introspect as I, Jwks as J, Refresh as R, RevokeAccess as X, Token as T};
    [T, R, I, J, T, R, I, X, T, R, I, J, T, R, I, X, T, R, I, J]
};

/// Every this many requests a `mixed` worker revokes its session (0.5%: a login costs an
/// argon2id verification, tens of milliseconds of the server's core).
const SESSION_REVOKE_EVERY: u64 = 200;

/// The endpoints and fixed bodies of the `mixed` scenario.
struct Mix {
    token_url: String,
    introspect_url: String,
    revoke_url: String,
    jwks_url: String,
    /// client_credentials.
    token_body: bytes::Bytes,
}

impl Mix {
    fn new(base: &str, args: &Args) -> Self {
        Self {
            token_url: format!("{base}/token"),
            introspect_url: format!("{base}/introspect"),
            revoke_url: format!("{base}/revoke"),
            jwks_url: format!("{base}/.well-known/jwks.json"),
            token_body: token_form(args, false),
        }
    }
}

/// A `mixed` worker: a session (refresh chain and live access token) of its own, and the
/// access token of its last client_credentials answer, to revoke.
async fn mixed_worker(
    plan: Arc<Plan>,
    tickets: Arc<AtomicU64>,
    capacity: usize,
    mut session: TokenAnswer,
) -> Stats {
    let mix = plan
        .mix
        .as_ref()
        .expect("the mixed scenario has its endpoints");
    let mut stats = Stats {
        latency_us: Vec::with_capacity(capacity),
        lag_us: Vec::with_capacity(if plan.interval.is_some() { capacity } else { 0 }),
        ..Stats::default()
    };
    let mut to_revoke: Option<String> = None;
    let mut n: u64 = 0;
    while let Some(due) = next_turn(&plan, &tickets).await {
        n += 1;
        let mut op = MIX[(n % MIX.len() as u64) as usize];
        if n.is_multiple_of(SESSION_REVOKE_EVERY) {
            op = MixOp::RevokeSession;
        }
        let revoked = match op {
            MixOp::RevokeAccess => to_revoke.take(),
            MixOp::RevokeSession => session.refresh_token.clone(),
            _ => None,
        };
        if matches!(op, MixOp::RevokeAccess | MixOp::RevokeSession) && revoked.is_none() {
            op = MixOp::Token;
        }
        let form = |body: bytes::Bytes, url: &str| {
            plan.client
                .post(url)
                .header(AUTHORIZATION, plan.authorization.clone())
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(body)
        };
        let request = match op {
            MixOp::Token => form(mix.token_body.clone(), &mix.token_url),
            MixOp::Refresh => form(
                refresh_body(
                    session.refresh_token.as_deref().unwrap_or_default(),
                    plan.scope.as_deref(),
                ),
                &mix.token_url,
            ),
            MixOp::Introspect => form(
                introspect_body(session.access_token.as_deref().unwrap_or_default()),
                &mix.introspect_url,
            ),
            MixOp::RevokeAccess | MixOp::RevokeSession => form(
                introspect_body(revoked.as_deref().unwrap_or_default()),
                &mix.revoke_url,
            ),
            MixOp::Jwks => plan.client.get(&mix.jwks_url),
        };
        let sent = Instant::now();
        if sent >= plan.end {
            break;
        }
        let (outcome, tokens) = match exchange(request).await {
            Ok((status, body)) => judge_mixed(op, status, &body),
            Err(e) => (Outcome::Transport(e), None),
        };
        let recorded = stats.record(&plan, due, sent, Instant::now());
        match (op, tokens) {
            (MixOp::Token, Some(tokens)) => to_revoke = tokens.access_token,
            // The chain goes on, and the new access token is the one introspected.
            (MixOp::Refresh, Some(tokens)) => session = tokens,
            _ => {}
        }
        if recorded && matches!(outcome, Outcome::Ok(_)) {
            stats.ok += 1;
            *stats.by_op.entry(op.name()).or_default() += 1;
        }
        let chain_broken = match (&outcome, op) {
            (Outcome::Status(status, _), MixOp::Refresh) => status.is_client_error(),
            (Outcome::Ok(_), MixOp::RevokeSession) => true,
            _ => false,
        };
        stats.failed(recorded, outcome);
        if chain_broken && let Some(login) = &plan.login {
            match stats.relogin(login).await {
                Some(tokens) => session = tokens,
                None => break,
            }
        }
    }
    stats
}

fn report(args: &Args, mut total: Stats, usage: Usage) {
    total.latency_us.sort_unstable();
    total.lag_us.sort_unstable();
    let count = total.latency_us.len() as u64;
    let non_2xx: u64 = total.statuses.values().sum();
    let rps = count as f64 / args.duration;
    let ok_rps = total.ok as f64 / args.duration;
    let ms = |us: u32| f64::from(us) / 1000.0;
    let (p50, p90, p99, p999, max) = (
        percentile(&total.latency_us, 50.0),
        percentile(&total.latency_us, 90.0),
        percentile(&total.latency_us, 99.0),
        percentile(&total.latency_us, 99.9),
        total.latency_us.last().copied().unwrap_or(0),
    );
    let target = match args.rate {
        Some(rate) => format!("{rate:.0} req/s"),
        None => "max".to_owned(),
    };
    println!(
        "scenario {}: concurrency {}, target rate {target}, warm-up {} s, timed run {} s, generator threads {}",
        args.scenario.name(),
        args.concurrency,
        args.warmup,
        args.duration,
        args.threads.max(1),
    );
    println!(
        "  requests      {count} ({rps:.1} req/s), 2xx {} ({ok_rps:.1}/s)",
        total.ok
    );
    println!(
        "  latency ms    p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
        ms(p50),
        ms(p90),
        ms(p99),
        ms(p999),
        ms(max)
    );
    if args.rate.is_some() {
        println!(
            "  schedule lag  p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
            ms(percentile(&total.lag_us, 50.0)),
            ms(percentile(&total.lag_us, 99.0)),
            ms(total.lag_us.last().copied().unwrap_or(0))
        );
    }
    let by_status: Vec<String> = total
        .statuses
        .iter()
        .map(|(status, n)| format!("{status}: {n}"))
        .collect();
    println!(
        "  non-2xx       {non_2xx}{}",
        if by_status.is_empty() {
            String::new()
        } else {
            format!(" ({})", by_status.join(", "))
        }
    );
    println!("  transport errors {}", total.transport_errors);
    if matches!(
        args.scenario,
        Scenario::Refresh | Scenario::Introspect | Scenario::Mixed
    ) {
        println!(
            "  bad answers   {} (2xx without a refresh token / not active; not counted as 2xx above)",
            total.bad_answers
        );
    }
    if args.scenario == Scenario::Refresh {
        println!(
            "  re-logins     {} (a refresh chain broke on a 4xx and its worker logged in again)",
            total.relogins
        );
    }
    let ops: Vec<String> = total
        .by_op
        .iter()
        .map(|(op, n)| format!("{op}:{n}"))
        .collect();
    if args.scenario == Scenario::Mixed {
        println!("  2xx by kind   {}", ops.join(", "));
        println!(
            "  re-logins     {} (after revoking the session's refresh token, or a broken chain)",
            total.relogins
        );
    }
    if let Some(cpu) = usage.generator {
        println!(
            "  generator CPU {:.0}% of one core over the timed run",
            cpu * 100.0
        );
    }
    let per_server_cpu = usage.server.map(|cpu| ok_rps / cpu.max(1e-9));
    if let (Some(cpu), Some(per_cpu)) = (usage.server, per_server_cpu) {
        println!(
            "  server CPU    {:.0}% of one core over the timed run: {per_cpu:.1} 2xx per server CPU-second",
            cpu * 100.0
        );
    }
    let faults_per_request = usage
        .server_faults
        .map(|faults| faults as f64 / count.max(1) as f64);
    if let Some(per_request) = faults_per_request {
        println!("  server page faults {per_request:.1} per request (minor, over the timed run)");
    }
    if let Some(failure) = &total.first_failure {
        println!("  first failure {failure}");
    }
    let statuses: Vec<String> = total
        .statuses
        .iter()
        .map(|(status, n)| format!("{status}:{n}"))
        .collect();
    println!(
        "RESULT scenario={} concurrency={} rate={} count={count} rps={rps:.1} ok={} ok_rps={ok_rps:.1} p50_ms={:.3} p90_ms={:.3} p99_ms={:.3} max_ms={:.3} non2xx={non_2xx} statuses={} transport_errors={} generator_cpu={} server_cpu={} ok_per_server_cpu_s={} server_faults_per_request={} p999_ms={:.3} bad_answers={} relogins={} ops={}",
        args.scenario.name(),
        args.concurrency,
        args.rate.map_or("max".to_owned(), |r| format!("{r:.0}")),
        total.ok,
        ms(p50),
        ms(p90),
        ms(p99),
        ms(max),
        if statuses.is_empty() {
            "-".to_owned()
        } else {
            statuses.join(",")
        },
        total.transport_errors,
        usage
            .generator
            .map_or("-".to_owned(), |c| format!("{:.0}%", c * 100.0)),
        usage
            .server
            .map_or("-".to_owned(), |c| format!("{:.0}%", c * 100.0)),
        per_server_cpu.map_or("-".to_owned(), |r| format!("{r:.1}")),
        faults_per_request.map_or("-".to_owned(), |f| format!("{f:.1}")),
        ms(p999),
        total.bad_answers,
        total.relogins,
        if ops.is_empty() {
            "-".to_owned()
        } else {
            ops.join(",")
        },
    );
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// RFC 6749 §2.3.1: id and secret are form-encoded, then joined and base64-encoded.
fn basic_auth(id: &str, secret: &str) -> HeaderValue {
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let credentials = format!("{}:{}", encode(id), encode(secret));
    let value = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(credentials)
    );
    let mut header = HeaderValue::from_str(&value).expect("base64 is a valid header value");
    header.set_sensitive(true);
    header
}

/// The `/token` form of a scenario: `client_credentials` (also how `introspect` gets its
/// token), or `password` (also how `refresh` and `mixed` open their sessions).
fn form_body(args: &Args) -> bytes::Bytes {
    match args.scenario {
        Scenario::ClientCredentials | Scenario::Introspect => token_form(args, false),
        Scenario::Password | Scenario::Refresh | Scenario::Mixed => token_form(args, true),
        Scenario::Argon2Bare => unreachable!("no HTTP in argon2-bare"),
    }
}

/// A `/token` form: `password` with the user of the arguments, else `client_credentials`.
fn token_form(args: &Args, password: bool) -> bytes::Bytes {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    if password {
        form.append_pair("grant_type", "password");
        form.append_pair("username", args.username.as_deref().unwrap_or_default());
        form.append_pair("password", args.password.as_deref().unwrap_or_default());
    } else {
        form.append_pair("grant_type", "client_credentials");
    }
    if let Some(scope) = &args.scope {
        form.append_pair("scope", scope);
    }
    if let Some(resource) = &args.resource {
        form.append_pair("resource", resource);
    }
    bytes::Bytes::from(form.finish())
}

/// One refresh of a chain: `grant_type=refresh_token` with the worker's current token.
fn refresh_body(token: &str, scope: Option<&str>) -> bytes::Bytes {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "refresh_token");
    form.append_pair("refresh_token", token);
    if let Some(scope) = scope {
        form.append_pair("scope", scope);
    }
    bytes::Bytes::from(form.finish())
}

/// RFC 7662 §2.1: the token, and nothing else.
fn introspect_body(token: &str) -> bytes::Bytes {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("token", token);
    bytes::Bytes::from(form.finish())
}

/// The bare argon2id rate of one thread with the server's parameters (taken from the crate):
/// one hash, then verifications against it, as a login does.
fn argon2_bare(args: &Args) {
    let params = Params::new(ARGON2_MEMORY_KIB, ARGON2_ITERATIONS, ARGON2_LANES, None)
        .expect("valid argon2 parameters");
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let password = b"correct horse battery staple";
    let salt = SaltString::encode_b64(b"tessera-load-salt").expect("a valid salt");
    let phc = argon2
        .hash_password(password, &salt)
        .expect("argon2id hashing succeeds")
        .to_string();
    let hash = PasswordHash::new(&phc).expect("a valid PHC string");

    let warmup_end = Instant::now() + Duration::from_secs_f64(args.warmup);
    while Instant::now() < warmup_end {
        argon2.verify_password(password, &hash).expect("verifies");
    }
    let mut latency_us = Vec::new();
    let thread_stat = std::path::Path::new("/proc/thread-self/schedstat");
    let cpu_before = thread_cpu_ns(thread_stat);
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(args.duration);
    loop {
        let t0 = Instant::now();
        argon2.verify_password(password, &hash).expect("verifies");
        let t1 = Instant::now();
        latency_us.push(micros(t1 - t0));
        if t1 >= end {
            break;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu_s = cpu_before
        .zip(thread_cpu_ns(thread_stat))
        .map(|(before, after)| after.saturating_sub(before) as f64 / 1e9);
    latency_us.sort_unstable();
    let rate = latency_us.len() as f64 / elapsed;
    let per_cpu = cpu_s.map(|cpu| latency_us.len() as f64 / cpu.max(1e-9));
    let ms = |us: u32| f64::from(us) / 1000.0;
    println!(
        "scenario argon2-bare: argon2id m={ARGON2_MEMORY_KIB} KiB t={ARGON2_ITERATIONS} p={ARGON2_LANES}, one thread, warm-up {} s, timed run {elapsed:.2} s",
        args.warmup
    );
    println!(
        "  verifications {} ({rate:.1}/s), ms each: p50 {:.3}  p99 {:.3}  max {:.3}",
        latency_us.len(),
        ms(percentile(&latency_us, 50.0)),
        ms(percentile(&latency_us, 99.0)),
        ms(latency_us.last().copied().unwrap_or(0))
    );
    if let (Some(cpu), Some(per_cpu)) = (cpu_s, per_cpu) {
        println!(
            "  thread CPU    {:.0}% of the wall time: {per_cpu:.1} verifications per CPU-second",
            100.0 * cpu / elapsed
        );
    }
    println!(
        "RESULT scenario=argon2-bare count={} ops_per_s={rate:.1} ops_per_cpu_s={} p50_ms={:.3} p99_ms={:.3}",
        latency_us.len(),
        per_cpu.map_or("-".to_owned(), |r| format!("{r:.1}")),
        ms(percentile(&latency_us, 50.0)),
        ms(percentile(&latency_us, 99.0)),
    );
}
