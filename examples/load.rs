//! Load generator for `POST /token`: a real HTTP client (reqwest, keep-alive), a fixed number of
//! worker tasks, a warm-up, then a timed run; prints requests/s, latency percentiles and the
//! answers that were not 2xx. `scripts/load.sh` runs the whole measurement.
//!
//! ```sh
//! cargo run --release --example load -- --url http://127.0.0.1:8080 \
//!     --scenario client-credentials --client-id ID --client-secret SECRET \
//!     --concurrency 32 --warmup 3 --duration 10 [--rate 5000]
//! cargo run --release --example load -- --scenario argon2-bare --duration 5
//! ```
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// POST /token grant_type=client_credentials, client authenticated with HTTP Basic.
    ClientCredentials,
    /// POST /token grant_type=password, client with HTTP Basic, user in the form.
    Password,
    /// No HTTP: argon2id verifications (m=19456 KiB, t=2, p=1) in one thread.
    Argon2Bare,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Self::ClientCredentials => "client-credentials",
            Self::Password => "password",
            Self::Argon2Bare => "argon2-bare",
        }
    }
}

#[derive(Debug, Parser)]
#[command(about = "Load generator for Tessera's POST /token")]
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
    if args.scenario == Scenario::Password && (args.username.is_none() || args.password.is_none()) {
        return Err("--username and --password are required for --scenario password".into());
    }
    Ok(())
}

/// Everything a worker needs; shared read-only.
struct Plan {
    client: reqwest::Client,
    token_url: String,
    authorization: HeaderValue,
    body: bytes::Bytes,
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
    /// Answers that were not 2xx, by status.
    statuses: BTreeMap<u16, u64>,
    /// Requests that got no complete answer (connection error, timeout).
    transport_errors: u64,
    first_failure: Option<String>,
}

async fn http_load(args: &Args) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .pool_idle_timeout(Duration::from_secs(300))
        .tcp_nodelay(true)
        .timeout(Duration::from_secs_f64(args.timeout))
        .build()
        .map_err(|e| format!("building the HTTP client: {e}"))?;
    let token_url = format!("{}/token", args.url.trim_end_matches('/'));
    let authorization = basic_auth(
        args.client_id.as_deref().unwrap_or_default(),
        args.client_secret.as_deref().unwrap_or_default(),
    );
    let body = form_body(args);

    // One request first: a wrong credential or URL stops here with the server's answer.
    let response = client
        .post(&token_url)
        .header(AUTHORIZATION, authorization.clone())
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body.clone())
        .send()
        .await
        .map_err(|e| format!("preflight request to {token_url}: {e}"))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if !status.is_success() || !text.contains("\"access_token\"") {
        return Err(format!(
            "preflight request to {token_url} answered {status}: {}",
            text.chars().take(300).collect::<String>()
        ));
    }

    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let plan = Arc::new(Plan {
        client,
        token_url,
        authorization,
        body,
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
    let workers: Vec<_> = (0..args.concurrency)
        .map(|_| tokio::spawn(worker(Arc::clone(&plan), Arc::clone(&tickets), capacity)))
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
        total.transport_errors += stats.transport_errors;
        for (status, n) in stats.statuses {
            *total.statuses.entry(status).or_default() += n;
        }
        if total.first_failure.is_none() {
            total.first_failure = stats.first_failure;
        }
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

async fn worker(plan: Arc<Plan>, tickets: Arc<AtomicU64>, capacity: usize) -> Stats {
    let mut stats = Stats {
        latency_us: Vec::with_capacity(capacity),
        lag_us: Vec::with_capacity(if plan.interval.is_some() { capacity } else { 0 }),
        ..Stats::default()
    };
    loop {
        let due = match plan.interval {
            Some(interval) => {
                let n = tickets.fetch_add(1, Ordering::Relaxed);
                let due = plan.start + Duration::from_secs_f64(n as f64 * interval);
                if due >= plan.end {
                    break;
                }
                tokio::time::sleep_until(due.into()).await;
                Some(due)
            }
            None => None,
        };
        let sent = Instant::now();
        if sent >= plan.end {
            break;
        }
        let outcome = match plan
            .client
            .post(&plan.token_url)
            .header(AUTHORIZATION, plan.authorization.clone())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(plan.body.clone())
            .send()
            .await
        {
            Ok(response) => {
                let status = response.status();
                match response.bytes().await {
                    Ok(body) => Ok((status, body)),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        let done = Instant::now();
        if sent < plan.measure_from || done > plan.end {
            continue;
        }
        stats.latency_us.push(micros(done - sent));
        if let Some(due) = due {
            stats
                .lag_us
                .push(micros(sent.saturating_duration_since(due)));
        }
        match outcome {
            Ok((status, _)) if status.is_success() => stats.ok += 1,
            Ok((status, body)) => {
                *stats.statuses.entry(status.as_u16()).or_default() += 1;
                if stats.first_failure.is_none() {
                    let text = String::from_utf8_lossy(&body);
                    stats.first_failure = Some(format!(
                        "{status}: {}",
                        text.chars().take(200).collect::<String>()
                    ));
                }
            }
            Err(e) => {
                stats.transport_errors += 1;
                if stats.first_failure.is_none() {
                    stats.first_failure = Some(format!("transport error: {e}"));
                }
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
        "RESULT scenario={} concurrency={} rate={} count={count} rps={rps:.1} ok={} ok_rps={ok_rps:.1} p50_ms={:.3} p90_ms={:.3} p99_ms={:.3} max_ms={:.3} non2xx={non_2xx} statuses={} transport_errors={} generator_cpu={} server_cpu={} ok_per_server_cpu_s={} server_faults_per_request={}",
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

fn form_body(args: &Args) -> bytes::Bytes {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    match args.scenario {
        Scenario::ClientCredentials => {
            form.append_pair("grant_type", "client_credentials");
        }
        Scenario::Password => {
            form.append_pair("grant_type", "password");
            form.append_pair("username", args.username.as_deref().unwrap_or_default());
            form.append_pair("password", args.password.as_deref().unwrap_or_default());
        }
        Scenario::Argon2Bare => unreachable!("no HTTP in argon2-bare"),
    }
    if let Some(scope) = &args.scope {
        form.append_pair("scope", scope);
    }
    if let Some(resource) = &args.resource {
        form.append_pair("resource", resource);
    }
    bytes::Bytes::from(form.finish())
}

/// The bare argon2id rate of one thread with the server's parameters (OWASP: m=19456 KiB, t=2,
/// p=1): one hash, then verifications against it, as a login does.
fn argon2_bare(args: &Args) {
    let params = Params::new(19_456, 2, 1, None).expect("valid argon2 parameters");
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
        "scenario argon2-bare: argon2id m=19456 KiB t=2 p=1, one thread, warm-up {} s, timed run {elapsed:.2} s",
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
