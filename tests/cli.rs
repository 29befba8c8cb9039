//! The `tessera` binary as an operator meets it: settings errors, the embedded default,
//! PostgreSQL, `migrate`, and SIGTERM.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_tessera");

fn tessera(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .current_dir(dir)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

fn postgres_admin_url() -> String {
    std::env::var("TESSERA_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

type Stdout = tokio::io::Lines<BufReader<tokio::process::ChildStdout>>;

/// Starts `serve` and returns the child, the URL it printed, and the rest of its output.
async fn serve(dir: &Path, env: &[(&str, &str)]) -> (Child, String, Stdout) {
    let mut child = tessera(dir, env, &["serve"])
        .spawn()
        .expect("tessera starts");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("tessera prints its URL within 30 s")
        .unwrap()
        .expect("a line on stdout");
    let url = line
        .split_whitespace()
        .find(|word| word.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .to_owned();
    (child, url, lines)
}

async fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let pid = child.id().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("tessera exits within 20 s of SIGTERM")
        .unwrap()
}

async fn get(url: &str) -> reqwest::Response {
    reqwest::get(url).await.expect("request")
}

#[tokio::test]
async fn bad_settings_stop_start_up_with_one_line_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.key"), "not a key").unwrap();
    std::fs::write(dir.path().join("typo.toml"), "acces_token_ttl = 60\n").unwrap();
    // (environment, arguments, the name the error must carry)
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str], &'a str);
    let cases: &[Case] = &[
        (
            &[("TESSERA_ACCESS_TOKEN_TTL", "abc")],
            &["serve"],
            "TESSERA_ACCESS_TOKEN_TTL",
        ),
        (
            &[("TESSERA_LISTEN", "nowhere")],
            &["serve"],
            "TESSERA_LISTEN",
        ),
        (
            &[("TESSERA_SIGNING_ALG", "HS256")],
            &["serve"],
            "TESSERA_SIGNING_ALG",
        ),
        (
            &[("TESSERA_DATABASE_URL", "mysql://root:hunter2@db/x")],
            &["migrate"],
            "TESSERA_DATABASE_URL",
        ),
        (
            &[("TESSERA_DATABASE_URL", "postgres://postgres@127.0.0.1/x")],
            &["serve"],
            "TESSERA_MASTER_KEY",
        ),
        (
            &[("TESSERA_MASTER_KEY_FILE", "bad.key")],
            &["serve"],
            "TESSERA_MASTER_KEY_FILE",
        ),
        (
            &[("TESSERA_LOG_FORMAT", "xml")],
            &["serve"],
            "TESSERA_LOG_FORMAT",
        ),
        (
            &[("TESSERA_ACCES_TOKEN_TTL", "60")],
            &["serve"],
            "TESSERA_ACCES_TOKEN_TTL",
        ),
        (&[], &["--config", "typo.toml", "serve"], "acces_token_ttl"),
        (&[], &["--config", "missing.toml", "serve"], "missing.toml"),
    ];
    for (env, args, name) in cases {
        let output = tessera(dir.path(), env, args).output().await.unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{env:?} {args:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(name), "{name}: {stderr}");
        assert!(!stderr.contains("hunter2"), "{stderr}");
        assert!(output.stdout.is_empty());
    }
    // Nothing was created by a refused start.
    assert!(!dir.path().join("data").exists());
}

#[tokio::test]
async fn the_embedded_default_creates_its_data_and_serves() {
    let dir = tempfile::tempdir().unwrap();
    // Port 0 instead of 8080 so the suite never collides with a running server; every other
    // setting is the default.
    let (mut child, url, mut stdout) =
        serve(dir.path(), &[("TESSERA_LISTEN", "127.0.0.1:0")]).await;
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    // With no admin configured, the first start creates one and shows its secret once.
    let mut shown = String::new();
    for _ in 0..3 {
        shown.push_str(&stdout.next_line().await.unwrap().unwrap());
        shown.push('\n');
    }
    let field = |name: &str| {
        shown
            .lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .unwrap_or_else(|| panic!("{name} in {shown}"))
            .trim()
            .to_owned()
    };
    let (admin_id, admin_secret) = (field("client_id:"), field("client_secret:"));
    assert!(admin_secret.starts_with("tss_"), "{shown}");
    let keys = reqwest::Client::new()
        .get(format!("{url}/admin/keys"))
        .basic_auth(&admin_id, Some(&admin_secret))
        .send()
        .await
        .unwrap();
    assert_eq!(keys.status(), 200, "the printed admin credentials work");

    let response = get(&format!("{url}/healthz")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(get(&format!("{url}/readyz")).await.status(), 200);

    let data = dir.path().join("data");
    assert!(data.join("tessera.db").is_file());
    let key = data.join("master.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&key), 0o600);
        assert_eq!(mode(&data), 0o700);
    }
    let first_key = std::fs::read_to_string(&key).unwrap();

    let status = terminate(&mut child).await;
    assert_eq!(status.code(), Some(0));

    // A second start reuses the key (it never overwrites it) and prints no secret again.
    let (mut child, url, mut stdout) =
        serve(dir.path(), &[("TESSERA_LISTEN", "127.0.0.1:0")]).await;
    assert_eq!(get(&format!("{url}/readyz")).await.status(), 200);
    assert_eq!(std::fs::read_to_string(&key).unwrap(), first_key);
    assert_eq!(terminate(&mut child).await.code(), Some(0));
    let mut rest = String::new();
    while let Ok(Some(line)) = stdout.next_line().await {
        rest.push_str(&line);
    }
    assert!(!rest.contains("client_secret"), "{rest}");
}

/// An idle keep-alive connection must not hold the process open: SIGTERM closes it and exits 0.
/// (Draining a request that is still running is tested in tests/shutdown.rs.)
#[tokio::test]
async fn sigterm_exits_zero_with_a_keep_alive_connection_open() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url, _stdout) = serve(dir.path(), &[("TESSERA_LISTEN", "127.0.0.1:0")]).await;
    let client = reqwest::Client::new();
    assert_eq!(
        client
            .get(format!("{url}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let status = terminate(&mut child).await;
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn migrate_is_idempotent_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let output = tessera(dir.path(), &[], &["migrate"])
            .output()
            .await
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(String::from_utf8_lossy(&output.stdout).contains("Migrations applied"));
    }
    assert!(dir.path().join("data/tessera.db").is_file());
}

#[tokio::test]
async fn the_same_binary_serves_on_postgres() {
    let name = format!("tessera_cli_{}", uuid::Uuid::new_v4().simple());
    let admin = postgres_admin_url();
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
        .await
        .unwrap();
    sqlx::raw_sql(&format!("create database {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let mut db_url = url::Url::parse(&admin).unwrap();
    db_url.set_path(&name);
    let db_url = db_url.to_string();
    let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("TESSERA_LISTEN", "127.0.0.1:0"),
        ("TESSERA_DATABASE_URL", db_url.as_str()),
        ("TESSERA_MASTER_KEY", key),
    ];
    for _ in 0..2 {
        let output = tessera(dir.path(), &env, &["migrate"])
            .output()
            .await
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let (mut child, url, _stdout) = serve(dir.path(), &env).await;
    assert_eq!(get(&format!("{url}/healthz")).await.status(), 200);
    assert_eq!(get(&format!("{url}/readyz")).await.status(), 200);
    assert_eq!(terminate(&mut child).await.code(), Some(0));
    // PostgreSQL needs no local files.
    assert!(!dir.path().join("data").exists());

    sqlx::raw_sql(&format!("drop database {name} with (force)"))
        .execute(&mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn logs_carry_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "bootstrap-secret-do-not-log-0123456789";
    let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let env = [
        ("TESSERA_LISTEN", "127.0.0.1:0"),
        ("TESSERA_MASTER_KEY", key),
        ("TESSERA_BOOTSTRAP_ADMIN_ID", "admin"),
        ("TESSERA_BOOTSTRAP_ADMIN_SECRET", secret),
        ("TESSERA_LOG_LEVEL", "trace"),
    ];
    let (mut child, url, _stdout) = serve(dir.path(), &env).await;
    get(&format!("{url}/healthz?token=query-secret")).await;
    get(&format!("{url}/nope")).await;
    // A client, a user, tokens of both grants, failures of both.
    let http = reqwest::Client::new();
    let created: serde_json::Value = http
        .post(format!("{url}/admin/clients"))
        .basic_auth("admin", Some(secret))
        .json(&serde_json::json!({"grant_types": ["client_credentials", "password"], "scopes": ["read"], "audiences": ["api"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let role = http
        .put(format!("{url}/admin/roles/reader"))
        .basic_auth("admin", Some(secret))
        .json(&serde_json::json!({"scopes": ["read"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(role.status(), 201);
    let (id, client_secret) = (
        created["client_id"].as_str().unwrap().to_owned(),
        created["client_secret"].as_str().unwrap().to_owned(),
    );
    let password = "user-password-do-not-log";
    let user = http
        .post(format!("{url}/admin/users"))
        .basic_auth("admin", Some(secret))
        .json(&serde_json::json!({"username": "grace", "password": password, "roles": ["reader"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(user.status(), 201);
    let mut tokens = Vec::new();
    for form in [
        vec![("grant_type", "client_credentials")],
        vec![
            ("grant_type", "password"),
            ("username", "grace"),
            ("password", password),
        ],
        vec![
            ("grant_type", "password"),
            ("username", "grace"),
            ("password", "wrong-password-do-not-log"),
        ],
    ] {
        let response = http
            .post(format!("{url}/token"))
            .basic_auth(&id, Some(&client_secret))
            .form(&form)
            .send()
            .await
            .unwrap();
        let body: serde_json::Value = response.json().await.unwrap();
        if let Some(token) = body["access_token"].as_str() {
            tokens.push(token.to_owned());
        }
    }
    assert_eq!(tokens.len(), 2);
    http.post(format!("{url}/token"))
        .basic_auth(&id, Some("tss_wrong-secret-do-not-log"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    terminate(&mut child).await;
    let mut stderr = String::new();
    use tokio::io::AsyncReadExt;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    assert!(stderr.contains("/healthz"), "requests are logged: {stderr}");
    let mut needles = vec![
        secret,
        key,
        "query-secret",
        client_secret.as_str(),
        password,
        "wrong-password-do-not-log",
        "tss_wrong-secret-do-not-log",
    ];
    needles.extend(tokens.iter().map(String::as_str));
    // Token signatures are the part that matters; a jti in a log line is fine.
    for needle in needles {
        assert!(
            !stderr.contains(needle),
            "a secret or token leaked into the log"
        );
    }
}

async fn published_kids(url: &str) -> Vec<String> {
    let jwks: serde_json::Value = get(&format!("{url}/.well-known/jwks.json"))
        .await
        .json()
        .await
        .unwrap();
    let mut kids: Vec<String> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    kids.sort();
    kids
}

/// The key commands act on the database; the running server (SQLite: polling the change feed)
/// follows within a second.
#[tokio::test]
async fn key_commands_change_what_a_running_server_publishes() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("TESSERA_LISTEN", "127.0.0.1:0")];
    let (mut child, url, _stdout) = serve(dir.path(), &env).await;
    let before = published_kids(&url).await;
    assert_eq!(before.len(), 2);

    let run = |args: &'static [&'static str]| {
        let dir = dir.path().to_owned();
        async move {
            let output = tessera(&dir, &[], args).output().await.unwrap();
            let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
            (
                output.status.code(),
                stdout,
                String::from_utf8_lossy(&output.stderr).into_owned(),
            )
        }
    };
    let (code, list, _) = run(&["keys", "list"]).await;
    assert_eq!(code, Some(0));
    assert!(list.contains("active") && list.contains("next"), "{list}");

    // Refused without --force: the next key is younger than the JWKS max-age.
    let (code, _, stderr) = run(&["keys", "rotate"]).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("max-age"), "{stderr}");
    let (code, rotated, stderr) = run(&["keys", "rotate", "--force"]).await;
    assert_eq!(code, Some(0), "{stderr}");
    let promoted = rotated.split_whitespace().nth(1).unwrap().to_owned();
    assert!(
        before.contains(&promoted),
        "the published next key now signs: {rotated}"
    );

    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    loop {
        let kids = published_kids(&url).await;
        if kids.len() == 3 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "server did not follow the rotation in 1 s: {kids:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let output = tessera(dir.path(), &[], &["keys", "revoke", &promoted])
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    while published_kids(&url).await.contains(&promoted) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "revoked key still published after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(terminate(&mut child).await.code(), Some(0));
}

/// On the embedded default, a master key file that disappeared while the database remains is a
/// lost backup, not a first start: refuse, and do not generate a replacement.
#[tokio::test]
async fn a_lost_master_key_file_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("TESSERA_LISTEN", "127.0.0.1:0"),
        ("TESSERA_LOG_FORMAT", "json"),
    ];
    let (mut child, _, _stdout) = serve(dir.path(), &env).await;
    assert_eq!(terminate(&mut child).await.code(), Some(0));
    let key = dir.path().join("data/master.key");
    std::fs::remove_file(&key).unwrap();

    let output = tessera(dir.path(), &env, &["serve"])
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("master.key is missing") && stderr.contains("backup"),
        "{stderr}"
    );
    // The cause is said once, not repeated by its wrapper ("master key: X: X").
    assert_eq!(stderr.matches("is missing").count(), 1, "{stderr}");
    assert!(!key.exists(), "no replacement key was generated");
}

/// The admin commands act on the database; a running server honours what they did.
#[tokio::test]
async fn client_and_user_commands_work_against_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("TESSERA_LISTEN", "127.0.0.1:0")];
    let (mut child, url, _stdout) = serve(dir.path(), &env).await;
    let run = |args: Vec<&str>, input: Option<&'static str>| {
        let dir = dir.path().to_owned();
        let args: Vec<String> = args.into_iter().map(str::to_owned).collect();
        async move {
            let mut command = tessera(
                &dir,
                &[],
                &args.iter().map(String::as_str).collect::<Vec<_>>(),
            );
            command.stdin(Stdio::piped());
            let mut child = command.spawn().unwrap();
            if let Some(input) = input {
                use tokio::io::AsyncWriteExt;
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(input.as_bytes())
                    .await
                    .unwrap();
            }
            drop(child.stdin.take());
            let output = child.wait_with_output().await.unwrap();
            let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
            assert!(
                output.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            stdout
        }
    };
    let created = run(
        vec![
            "client",
            "create",
            "--id",
            "ops",
            "--grant",
            "client_credentials",
            "--grant",
            "password",
            "--scope",
            "read",
            "--audience",
            "api",
        ],
        None,
    )
    .await;
    let secret = created
        .lines()
        .find_map(|l| l.strip_prefix("client_secret: "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_owned();
    let shown = run(vec!["client", "show", "ops"], None).await;
    assert!(shown.contains("client_credentials password") && !shown.contains(&secret));
    let role = run(
        vec![
            "role", "put", "reader", "--scope", "read", "--scope", "audit",
        ],
        None,
    )
    .await;
    assert!(
        role.contains("created reader") && role.contains("read audit"),
        "{role}"
    );
    run(vec!["role", "put", "spare", "--scope", "x"], None).await;
    let listed = run(vec!["role", "list"], None).await;
    assert!(
        listed.contains("reader\tread audit") && listed.contains("spare\tx"),
        "{listed}"
    );
    run(vec!["role", "delete", "spare"], None).await;
    assert!(!run(vec!["role", "list"], None).await.contains("spare"));
    let heidi = run(
        vec!["user", "create", "heidi", "--role", "reader"],
        Some("heidi's password\n"),
    )
    .await;
    let heidi_id = heidi
        .lines()
        .find_map(|l| l.strip_prefix("id:"))
        .unwrap()
        .trim()
        .to_owned();

    let http = reqwest::Client::new();
    let token = |secret: String, form: Vec<(&'static str, &'static str)>| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            http.post(format!("{url}/token"))
                .basic_auth("ops", Some(secret))
                .form(&form)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let login = vec![
        ("grant_type", "password"),
        ("username", "heidi"),
        ("password", "heidi's password"),
    ];
    // The server learns of the new client through the change feed (within a second).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while token(secret.clone(), vec![("grant_type", "client_credentials")]).await != 200 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "client not seen by the server"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(token(secret.clone(), login.clone()).await, 200);
    run(vec!["user", "disable", "heidi"], None).await;
    assert_eq!(token(secret.clone(), login.clone()).await, 400);
    run(vec!["user", "enable", "heidi"], None).await;
    assert_eq!(token(secret.clone(), login.clone()).await, 200);
    // Without a role, heidi holds no scope.
    let roles = run(vec!["user", "roles", &heidi_id], None).await;
    assert!(roles.contains("roles:"), "{roles}");
    assert_eq!(token(secret.clone(), login.clone()).await, 400);
    run(vec!["user", "roles", &heidi_id, "reader"], None).await;
    assert_eq!(token(secret.clone(), login.clone()).await, 200);

    let rotated = run(vec!["client", "rotate-secret", "ops"], None).await;
    let new = rotated
        .lines()
        .find_map(|l| l.strip_prefix("client_secret: "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while token(secret.clone(), vec![("grant_type", "client_credentials")]).await != 401 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "old secret still accepted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        token(new.clone(), vec![("grant_type", "client_credentials")]).await,
        200
    );
    // With an overlap, the secret it replaces keeps working beside the new one.
    let rolled = run(
        vec![
            "client",
            "rotate-secret",
            "ops",
            "--previous-valid-for",
            "600",
        ],
        None,
    )
    .await;
    assert!(rolled.contains("the old secret works for 600 more seconds at most"));
    let newer = rolled
        .lines()
        .find_map(|l| l.strip_prefix("client_secret: "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while token(newer.clone(), vec![("grant_type", "client_credentials")]).await != 200 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "new secret not seen by the server"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        token(new, vec![("grant_type", "client_credentials")]).await,
        200
    );
    let shown = run(vec!["client", "show", "ops"], None).await;
    assert!(shown.contains("secret_created_at: 20"), "{shown}");
    assert!(shown.contains("secret_expires_at: -"), "{shown}");
    assert!(shown.contains("scope_usage:   read"), "{shown}");
    assert_eq!(terminate(&mut child).await.code(), Some(0));
}

/// A process killed in the middle of rotations leaves every session in the old or the new
/// state: no token consumed without its successor stored, never two live tokens.
#[tokio::test]
async fn a_killed_process_never_leaves_half_a_rotation() {
    for postgres in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let mut env = vec![
            ("TESSERA_LISTEN", "127.0.0.1:0".to_owned()),
            ("TESSERA_BOOTSTRAP_ADMIN_ID", "admin".to_owned()),
            (
                "TESSERA_BOOTSTRAP_ADMIN_SECRET",
                "kill-test-admin-secret".to_owned(),
            ),
            (
                "TESSERA_MASTER_KEY",
                "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".to_owned(),
            ),
        ];
        let pg_name = format!("tessera_kill_{}", uuid::Uuid::new_v4().simple());
        let db_url = if postgres {
            let admin = postgres_admin_url();
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
                .await
                .unwrap();
            sqlx::raw_sql(&format!("create database {pg_name}"))
                .execute(&mut conn)
                .await
                .unwrap();
            let mut url = url::Url::parse(&admin).unwrap();
            url.set_path(&pg_name);
            url.to_string()
        } else {
            format!("sqlite://{}", dir.path().join("kill.db").display())
        };
        env.push(("TESSERA_DATABASE_URL", db_url.clone()));
        let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (mut child, url, _stdout) = serve(dir.path(), &env_refs).await;

        let http = reqwest::Client::new();
        let created: serde_json::Value = http
            .post(format!("{url}/admin/clients"))
            .basic_auth("admin", Some("kill-test-admin-secret"))
            .json(&serde_json::json!({"grant_types": ["password", "refresh_token"], "scopes": ["read"], "audiences": ["api"]}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = created["client_id"].as_str().unwrap().to_owned();
        let secret = created["client_secret"].as_str().unwrap().to_owned();
        http.put(format!("{url}/admin/roles/reader"))
            .basic_auth("admin", Some("kill-test-admin-secret"))
            .json(&serde_json::json!({"scopes": ["read"]}))
            .send()
            .await
            .unwrap();
        http.post(format!("{url}/admin/users"))
            .basic_auth("admin", Some("kill-test-admin-secret"))
            .json(&serde_json::json!({"username": "kim", "password": "kim's password", "roles": ["reader"]}))
            .send()
            .await
            .unwrap();
        // Eight sessions, each refreshing in a chain as fast as it can.
        let mut chains = Vec::new();
        for _ in 0..8 {
            let (http, url, id, secret) = (http.clone(), url.clone(), id.clone(), secret.clone());
            chains.push(tokio::spawn(async move {
                let login: serde_json::Value = http
                    .post(format!("{url}/token"))
                    .basic_auth(&id, Some(&secret))
                    .form(&[
                        ("grant_type", "password"),
                        ("username", "kim"),
                        ("password", "kim's password"),
                    ])
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let mut token = login["refresh_token"].as_str().unwrap().to_owned();
                loop {
                    let Ok(response) = http
                        .post(format!("{url}/token"))
                        .basic_auth(&id, Some(&secret))
                        .form(&[
                            ("grant_type", "refresh_token"),
                            ("refresh_token", token.as_str()),
                        ])
                        .send()
                        .await
                    else {
                        return;
                    };
                    let Ok(body) = response.json::<serde_json::Value>().await else {
                        return;
                    };
                    match body["refresh_token"].as_str() {
                        Some(next) => token = next.to_owned(),
                        None => return,
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        child.start_kill().unwrap(); // SIGKILL: no draining, no cleanup
        child.wait().await.unwrap();
        for chain in chains {
            let _ = chain.await;
        }

        let orphaned = "select count(*) from refresh_token t where t.successor_digest is not null and not exists (
            select 1 from refresh_token n where n.session_id = t.session_id and n.token_digest = t.successor_digest)";
        let doubled = "select count(*) from (select session_id from refresh_token
            where consumed_at is null and revoked_at is null group by session_id having count(*) > 1) as d";
        let rotations = "select count(*) from refresh_token where consumed_at is not null";
        let (orphans, doubles, rotated): (i64, i64, i64) = if postgres {
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db_url)
                .await
                .unwrap();
            (
                sqlx::query_scalar(orphaned)
                    .fetch_one(&mut conn)
                    .await
                    .unwrap(),
                sqlx::query_scalar(doubled)
                    .fetch_one(&mut conn)
                    .await
                    .unwrap(),
                sqlx::query_scalar(rotations)
                    .fetch_one(&mut conn)
                    .await
                    .unwrap(),
            )
        } else {
            let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&db_url)
                .await
                .unwrap();
            (
                sqlx::query_scalar(orphaned)
                    .fetch_one(&mut conn)
                    .await
                    .unwrap(),
                sqlx::query_scalar(doubled)
                    .fetch_one(&mut conn)
                    .await
                    .unwrap(),
                sqlx::query_scalar(rotations)
                    .fetch_one(&mut conn)
                    .await
                    .unwrap(),
            )
        };
        assert!(
            rotated > 8,
            "the kill came while rotations were running ({rotated})"
        );
        assert_eq!(orphans, 0, "a consumed token without its successor");
        assert_eq!(doubles, 0, "two live tokens in one session");
        if postgres {
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&postgres_admin_url())
                .await
                .unwrap();
            sqlx::raw_sql(&format!("drop database {pg_name} with (force)"))
                .execute(&mut conn)
                .await
                .unwrap();
        }
    }
}

/// A process killed while a batch of rotations is inside its transaction (held there by a row
/// lock this test takes on one of the sessions): no request got an answer, and the batch is
/// all or nothing (one statement): every session either rotated with its successor and its
/// audit event, or is untouched. A restarted instance answers each presented token again, by a
/// rotation or with the successor the dead one committed (the retry window).
#[tokio::test]
async fn a_process_killed_mid_batch_answered_nothing_and_left_no_half_batch() {
    let dir = tempfile::tempdir().unwrap();
    let admin = postgres_admin_url();
    let pg_name = format!("tessera_kill_batch_{}", uuid::Uuid::new_v4().simple());
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
        .await
        .unwrap();
    sqlx::raw_sql(&format!("create database {pg_name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let mut db_url = url::Url::parse(&admin).unwrap();
    db_url.set_path(&pg_name);
    let db_url = db_url.to_string();
    let base = [
        ("TESSERA_LISTEN", "127.0.0.1:0"),
        ("TESSERA_BOOTSTRAP_ADMIN_ID", "admin"),
        ("TESSERA_BOOTSTRAP_ADMIN_SECRET", "kill-test-admin-secret"),
        (
            "TESSERA_MASTER_KEY",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        ),
        ("TESSERA_DATABASE_URL", db_url.as_str()),
        ("TESSERA_REFRESH_REUSE_GRACE", "300"),
    ];
    // A batch starts with exactly three rotations.
    let mut batched = base.to_vec();
    batched.push(("TESSERA_REFRESH_BATCH_SIZE", "3"));
    batched.push(("TESSERA_REFRESH_BATCH_WAIT_US", "10000000"));
    let (mut child, url, _stdout) = serve(dir.path(), &batched).await;

    let http = reqwest::Client::new();
    let admin_call = |method: reqwest::Method, path: &str| {
        http.request(method, format!("{url}{path}"))
            .basic_auth("admin", Some("kill-test-admin-secret"))
    };
    let created: serde_json::Value = admin_call(reqwest::Method::POST, "/admin/clients")
        .json(&serde_json::json!({"grant_types": ["password", "refresh_token"], "scopes": ["read"], "audiences": ["api"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["client_id"].as_str().unwrap().to_owned();
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    admin_call(reqwest::Method::PUT, "/admin/roles/reader")
        .json(&serde_json::json!({"scopes": ["read"]}))
        .send()
        .await
        .unwrap();
    admin_call(reqwest::Method::POST, "/admin/users")
        .json(&serde_json::json!({"username": "kim", "password": "kim's password", "roles": ["reader"]}))
        .send()
        .await
        .unwrap();
    let token_call = |url: &str, form: &[(&str, &str)]| {
        http.post(format!("{url}/token"))
            .basic_auth(&id, Some(&secret))
            .form(form)
            .send()
    };
    let mut tokens = Vec::new();
    for _ in 0..3 {
        let login: serde_json::Value = token_call(
            &url,
            &[
                ("grant_type", "password"),
                ("username", "kim"),
                ("password", "kim's password"),
            ],
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        tokens.push(login["refresh_token"].as_str().unwrap().to_owned());
    }
    let session = |token: &str| {
        tessera::domain::refresh::parse_refresh_token(token)
            .unwrap()
            .0
    };

    // Hold the middle session's row: the batch's statement waits there, inside its transaction.
    let mut holder = <sqlx::PgConnection as sqlx::Connection>::connect(&db_url)
        .await
        .unwrap();
    sqlx::raw_sql("begin").execute(&mut holder).await.unwrap();
    sqlx::query("select 1 from session where session_id = $1 for update")
        .bind(session(&tokens[1]))
        .execute(&mut holder)
        .await
        .unwrap();
    let mut requests = Vec::new();
    for token in &tokens {
        let request = token_call(
            &url,
            &[("grant_type", "refresh_token"), ("refresh_token", token)],
        );
        requests.push(tokio::spawn(
            async move { request.await.map(|r| r.status()) },
        ));
    }
    let waiting = "select count(*) from pg_stat_activity
        where datname = current_database() and application_name = 'tessera' and wait_event_type = 'Lock'";
    let mut observer = <sqlx::PgConnection as sqlx::Connection>::connect(&db_url)
        .await
        .unwrap();
    let mut blocked = false;
    for _ in 0..600 {
        let n: i64 = sqlx::query_scalar(waiting)
            .fetch_one(&mut observer)
            .await
            .unwrap();
        if n > 0 {
            blocked = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(blocked, "the batch reached the held row");
    child.start_kill().unwrap(); // SIGKILL, mid-transaction
    child.wait().await.unwrap();
    for request in requests {
        let answer = request.await.unwrap();
        assert!(answer.is_err(), "an answer from a killed batch: {answer:?}");
    }
    // Let the orphaned statement run to its end (commit or not), then look.
    sqlx::raw_sql("rollback")
        .execute(&mut holder)
        .await
        .unwrap();
    let busy = "select count(*) from pg_stat_activity
        where datname = current_database() and application_name = 'tessera' and state = 'active'";
    for _ in 0..600 {
        let n: i64 = sqlx::query_scalar(busy)
            .fetch_one(&mut observer)
            .await
            .unwrap();
        if n == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let per_session = "select (select count(*) from refresh_token where session_id = $1 and consumed_at is not null),
                              (select count(*) from refresh_token where session_id = $1),
                              (select count(*) from audit_event where session_id = $1 and event_type = 'refresh')";
    let mut rotated = Vec::new();
    for token in &tokens {
        let (consumed, rows, events): (i64, i64, i64) = sqlx::query_as(per_session)
            .bind(session(token))
            .fetch_one(&mut observer)
            .await
            .unwrap();
        // Untouched (one token, no event) or rotated whole (consumed, successor, event).
        assert!(
            (consumed, rows, events) == (0, 1, 0) || (consumed, rows, events) == (1, 2, 1),
            "half a rotation: {consumed} consumed, {rows} rows, {events} events"
        );
        rotated.push(consumed == 1);
    }
    assert!(
        rotated.iter().all(|r| *r) || rotated.iter().all(|r| !*r),
        "half a batch: {rotated:?}"
    );

    // A new instance answers every presented token again.
    let (mut child, url, _stdout) = serve(dir.path(), &base).await;
    for token in &tokens {
        let answer: serde_json::Value = token_call(
            &url,
            &[("grant_type", "refresh_token"), ("refresh_token", token)],
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        assert!(answer["refresh_token"].is_string(), "{answer}");
    }
    assert_eq!(terminate(&mut child).await.code(), Some(0));
    drop((holder, observer));
    sqlx::raw_sql(&format!("drop database {pg_name} with (force)"))
        .execute(&mut conn)
        .await
        .unwrap();
}

/// `tessera master-key rotate` on the embedded default: afterwards only the new key (or the old
/// one as TESSERA_MASTER_KEY_PREVIOUS beside it) opens the database, and the kids are the same.
#[tokio::test]
async fn master_key_rotate_re_encrypts_under_the_new_key() {
    let dir = tempfile::tempdir().unwrap();
    let run = |env: Vec<(&'static str, String)>, args: &'static [&'static str]| {
        let dir = dir.path().to_owned();
        async move {
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let output = tessera(&dir, &env, args).output().await.unwrap();
            let text = String::from_utf8_lossy(&output.stdout).into_owned()
                + &String::from_utf8_lossy(&output.stderr);
            (output.status.code(), text)
        }
    };
    let kids = |listing: &str| -> Vec<String> {
        let mut kids: Vec<String> = listing
            .lines()
            .filter_map(|line| line.split_whitespace().next())
            .filter(|word| word.len() == 43)
            .map(str::to_owned)
            .collect();
        kids.sort();
        kids
    };
    let (code, before) = run(vec![], &["keys", "list"]).await;
    assert_eq!(code, Some(0), "{before}");
    assert_eq!(kids(&before).len(), 2, "{before}");
    let old = std::fs::read_to_string(dir.path().join("data/master.key")).unwrap();
    let new = "bmV3IG1hc3RlciBrZXkgZm9yIHRoZSByb3RhdGlvbiE=";
    std::fs::write(dir.path().join("new.key"), format!("{new}\n")).unwrap();

    let (code, text) = run(
        vec![],
        &["master-key", "rotate", "--new-key-file", "absent.key"],
    )
    .await;
    assert_eq!(code, Some(1), "{text}");
    let (code, text) = run(
        vec![],
        &["master-key", "rotate", "--new-key-file", "new.key"],
    )
    .await;
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("Re-encrypted 2 signing keys"), "{text}");
    assert!(
        !text.contains(new) && !text.contains(old.trim()),
        "a key was printed: {text}"
    );

    // The old key alone (the generated key file) no longer opens the database.
    let (code, text) = run(vec![], &["keys", "list"]).await;
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("master key does not match"), "{text}");
    let with_new = vec![("TESSERA_MASTER_KEY", new.to_owned())];
    let (code, after) = run(with_new.clone(), &["keys", "list"]).await;
    assert_eq!(code, Some(0), "{after}");
    assert_eq!(kids(&after), kids(&before));
    let mut with_both = with_new;
    with_both.push(("TESSERA_MASTER_KEY_PREVIOUS", old.trim().to_owned()));
    let (code, text) = run(with_both, &["keys", "list"]).await;
    assert_eq!(code, Some(0), "{text}");
}
