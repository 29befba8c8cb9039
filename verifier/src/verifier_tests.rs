//! The verifier against a small issuer these tests serve themselves (metadata, JWKS, status
//! lists), with a clock they move.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::{Value, json};

use super::*;
use crate::jws::Alg;
use crate::jws::tests::TestKey;

const AUDIENCE: &str = "https://api.example";

#[derive(Clone)]
struct TestClock(Arc<Mutex<SystemTime>>);

impl TestClock {
    fn new() -> Self {
        Self(Arc::new(Mutex::new(
            UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        )))
    }

    fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for TestClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap()
    }
}

/// What the test issuer serves; the tests change it as they go.
struct Issuer {
    url: Mutex<String>,
    keys: Mutex<Vec<Arc<TestKey>>>,
    jwks_cache_control: Mutex<String>,
    jwks_body: Mutex<Option<Vec<u8>>>,
    jwks_fetches: AtomicUsize,
    list_fetches: AtomicUsize,
    down: AtomicBool,
    /// The statuses of list 1, its ttl, and a raw body replacing the list token if set.
    statuses: Mutex<Vec<u8>>,
    ttl: Mutex<Option<u64>>,
    list_body: Mutex<Option<String>>,
    list_typ: Mutex<&'static str>,
}

struct Harness {
    issuer: Arc<Issuer>,
    clock: TestClock,
    verifier: Verifier,
    url: String,
}

impl Harness {
    async fn start() -> Self {
        Self::start_with(|b| b).await
    }

    async fn start_with(settings: impl FnOnce(VerifierBuilder) -> VerifierBuilder) -> Self {
        let issuer = Arc::new(Issuer {
            url: Mutex::new(String::new()),
            keys: Mutex::new(vec![Arc::new(TestKey::new(Alg::Es256, "k1"))]),
            jwks_cache_control: Mutex::new("public, max-age=60".into()),
            jwks_body: Mutex::new(None),
            jwks_fetches: AtomicUsize::new(0),
            list_fetches: AtomicUsize::new(0),
            down: AtomicBool::new(false),
            statuses: Mutex::new(vec![0; 16]),
            ttl: Mutex::new(Some(30)),
            list_body: Mutex::new(None),
            list_typ: Mutex::new("statuslist+jwt"),
        });
        let app = Router::new()
            .route("/.well-known/oauth-authorization-server", get(metadata))
            .route("/jwks", get(jwks))
            .route("/status/1", get(status_list))
            .with_state(Arc::clone(&issuer));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        *issuer.url.lock().unwrap() = url.clone();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let clock = TestClock::new();
        let verifier = settings(Verifier::builder(&url, AUDIENCE).clock(clock.clone()))
            .build()
            .unwrap();
        Self {
            issuer,
            clock,
            verifier,
            url,
        }
    }

    fn now(&self) -> i64 {
        unix(self.clock.now())
    }

    fn claims(&self, extra: Value) -> Value {
        let now = self.now();
        let mut claims = json!({"iss": self.url, "sub": "alice", "aud": AUDIENCE,
            "exp": now + 300, "iat": now, "jti": "j1", "client_id": "c1", "scope": "read"});
        for (name, value) in extra.as_object().unwrap() {
            claims[name] = value.clone();
        }
        claims
    }

    fn token(&self, extra: Value) -> String {
        let key = Arc::clone(&self.issuer.keys.lock().unwrap()[0]);
        key.sign(&self.claims(extra))
    }

    fn with_status(&self, idx: u64) -> String {
        let uri = format!("{}/status/1", self.url);
        self.token(json!({"status": {"status_list": {"idx": idx, "uri": uri}}}))
    }

    fn jwks_fetches(&self) -> usize {
        self.issuer.jwks_fetches.load(Ordering::SeqCst)
    }
}

async fn metadata(State(issuer): State<Arc<Issuer>>) -> impl IntoResponse {
    let url = issuer.url.lock().unwrap().clone();
    axum::Json(json!({"issuer": url, "jwks_uri": format!("{url}/jwks"),
        "status_list_aggregation_endpoint": format!("{url}/status")}))
}

async fn jwks(State(issuer): State<Arc<Issuer>>) -> axum::response::Response {
    issuer.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    if issuer.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let body = issuer.jwks_body.lock().unwrap().clone().unwrap_or_else(|| {
        let keys: Vec<Value> = issuer
            .keys
            .lock()
            .unwrap()
            .iter()
            .map(|k| k.jwk())
            .collect();
        json!({"keys": keys}).to_string().into_bytes()
    });
    let cache_control = issuer.jwks_cache_control.lock().unwrap().clone();
    ([(header::CACHE_CONTROL, cache_control)], body).into_response()
}

async fn status_list(State(issuer): State<Arc<Issuer>>) -> axum::response::Response {
    issuer.list_fetches.fetch_add(1, Ordering::SeqCst);
    if issuer.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    if let Some(body) = issuer.list_body.lock().unwrap().clone() {
        return body.into_response();
    }
    let url = issuer.url.lock().unwrap().clone();
    let lst = StatusList::encode(1, &issuer.statuses.lock().unwrap());
    let mut payload = json!({"sub": format!("{url}/status/1"), "iat": 1_700_000_000,
        "status_list": {"bits": 1, "lst": lst}});
    if let Some(ttl) = *issuer.ttl.lock().unwrap() {
        payload["ttl"] = json!(ttl);
    }
    let key = Arc::clone(&issuer.keys.lock().unwrap()[0]);
    let typ = *issuer.list_typ.lock().unwrap();
    let header = json!({"alg": key.alg.as_str(), "typ": typ, "kid": key.kid});
    key.sign_with(&header, &payload).into_response()
}

#[tokio::test]
async fn a_valid_token_passes_and_the_jwks_is_fetched_once_per_max_age() {
    let h = Harness::start().await;
    for _ in 0..20 {
        let claims = h.verifier.verify(&h.token(json!({}))).await.unwrap();
        assert_eq!(
            (claims.sub.as_str(), claims.client_id.as_str()),
            ("alice", "c1")
        );
    }
    assert_eq!(h.jwks_fetches(), 1);
    assert_eq!(
        h.verifier.status_list_aggregation_endpoint().await,
        Some(format!("{}/status", h.url))
    );
    h.clock.advance(Duration::from_secs(59));
    h.verifier.verify(&h.token(json!({}))).await.unwrap();
    assert_eq!(h.jwks_fetches(), 1, "still fresh");
    h.clock.advance(Duration::from_secs(1));
    h.verifier.verify(&h.token(json!({}))).await.unwrap();
    assert_eq!(h.jwks_fetches(), 2, "refetched at max-age");
}

#[tokio::test]
async fn hostile_tokens_are_refused_each_for_its_cause() {
    let h = Harness::start().await;
    let v = &h.verifier;
    assert_eq!(
        v.verify(&h.token(json!({"aud": "other"}))).await,
        Err(Rejection::WrongAudience)
    );
    assert_eq!(
        v.verify(&h.token(json!({"iss": "https://evil.example"})))
            .await,
        Err(Rejection::WrongIssuer)
    );
    let expired = h.token(json!({}));
    h.clock.advance(Duration::from_secs(300));
    assert_eq!(v.verify(&expired).await, Err(Rejection::Expired));
    let key = Arc::clone(&h.issuer.keys.lock().unwrap()[0]);
    let claims = h.claims(json!({}));
    let header = |extra: Value| {
        let mut header = json!({"alg": "ES256", "typ": "at+jwt", "kid": "k1"});
        for (name, value) in extra.as_object().unwrap() {
            header[name] = value.clone();
        }
        header
    };
    let cases = [
        (header(json!({"typ": "JWT"})), Rejection::WrongType),
        (header(json!({"alg": "none"})), Rejection::WrongAlgorithm),
        (header(json!({"alg": "HS256"})), Rejection::WrongAlgorithm),
        (
            header(json!({"jku": format!("{}/jwks", h.url)})),
            Rejection::ForbiddenHeader,
        ),
        (
            header(json!({"x5u": "https://evil.example/cert"})),
            Rejection::ForbiddenHeader,
        ),
        (
            header(json!({"jwk": key.jwk()})),
            Rejection::ForbiddenHeader,
        ),
    ];
    for (header, rejection) in cases {
        assert_eq!(
            v.verify(&key.sign_with(&header, &claims)).await,
            Err(rejection),
            "{header}"
        );
    }
    let attacker = TestKey::new(Alg::Es256, "k1");
    assert_eq!(
        v.verify(&attacker.sign(&claims)).await,
        Err(Rejection::BadSignature)
    );
}

#[tokio::test]
async fn unknown_kids_refetch_the_jwks_at_most_once_per_ten_seconds() {
    let h = Harness::start().await;
    h.verifier.verify(&h.token(json!({}))).await.unwrap();
    let claims = h.claims(json!({}));
    for n in 0..50 {
        let forged = TestKey::new(Alg::Es256, &format!("forged-{n}")).sign(&claims);
        assert_eq!(h.verifier.verify(&forged).await, Err(Rejection::UnknownKey));
    }
    assert_eq!(h.jwks_fetches(), 2, "one refetch for fifty unknown kids");
    h.clock.advance(UNKNOWN_KID_REFETCH_INTERVAL);
    let forged = TestKey::new(Alg::Es256, "forged-late").sign(&claims);
    assert_eq!(h.verifier.verify(&forged).await, Err(Rejection::UnknownKey));
    assert_eq!(h.jwks_fetches(), 3);
}

#[tokio::test]
async fn a_rotation_is_followed_without_a_failed_request() {
    let h = Harness::start().await;
    h.verifier.verify(&h.token(json!({}))).await.unwrap();
    // The issuer publishes a new key and signs with it at once.
    let new = Arc::new(TestKey::new(Alg::EdDsa, "k2"));
    h.issuer.keys.lock().unwrap().insert(0, Arc::clone(&new));
    let claims = h.verifier.verify(&h.token(json!({}))).await.unwrap();
    assert_eq!(claims.sub, "alice");
    assert_eq!(h.jwks_fetches(), 2);
}

#[tokio::test]
async fn with_the_issuer_down_cached_keys_serve_until_the_staleness_bound() {
    let h = Harness::start_with(|b| b.staleness(Duration::from_secs(120))).await;
    h.verifier.verify(&h.token(json!({}))).await.unwrap();
    h.issuer.down.store(true, Ordering::SeqCst);
    // max-age 60 s, staleness 120 s: usable until 180 s after the fetch.
    h.clock.advance(Duration::from_secs(179));
    h.verifier.verify(&h.token(json!({}))).await.unwrap();
    assert!(h.jwks_fetches() >= 2, "it tried");
    h.clock.advance(Duration::from_secs(1));
    assert_eq!(
        h.verifier.verify(&h.token(json!({}))).await,
        Err(Rejection::KeysUnavailable)
    );
    // Back up: the next attempt (after the retry interval) restores service.
    h.issuer.down.store(false, Ordering::SeqCst);
    h.clock.advance(RETRY_INTERVAL);
    h.verifier.verify(&h.token(json!({}))).await.unwrap();
}

#[tokio::test]
async fn a_huge_or_malformed_jwks_is_refused_without_panic() {
    let huge = Harness::start_with(|b| b.max_response_bytes(64 * 1024)).await;
    *huge.issuer.jwks_body.lock().unwrap() = Some(vec![b' '; 1 << 20]);
    assert_eq!(
        huge.verifier.verify(&huge.token(json!({}))).await,
        Err(Rejection::KeysUnavailable)
    );
    for body in [
        &b"{\"keys\": 7}"[..],
        b"<html>",
        b"{\"keys\":[{\"kty\":\"EC\",\"kid\":\"k1\"}]}",
    ] {
        let h = Harness::start().await;
        *h.issuer.jwks_body.lock().unwrap() = Some(body.to_vec());
        let verdict = h.verifier.verify(&h.token(json!({}))).await;
        assert!(
            matches!(
                verdict,
                Err(Rejection::KeysUnavailable | Rejection::UnknownKey)
            ),
            "{verdict:?}"
        );
    }
}

#[tokio::test]
async fn the_status_list_is_honoured_within_its_ttl() {
    let h = Harness::start().await;
    h.issuer.statuses.lock().unwrap()[3] = 1;
    h.verifier.verify(&h.with_status(2)).await.unwrap();
    assert_eq!(
        h.verifier.verify(&h.with_status(3)).await,
        Err(Rejection::Revoked)
    );
    assert_eq!(
        h.verifier.verify(&h.with_status(16)).await,
        Err(Rejection::StatusOutOfRange)
    );
    assert_eq!(h.issuer.list_fetches.load(Ordering::SeqCst), 1, "cached");
    // Revoked at the issuer: refused once the ttl (30 s) has passed, not before.
    h.issuer.statuses.lock().unwrap()[2] = 1;
    h.clock.advance(Duration::from_secs(29));
    h.verifier.verify(&h.with_status(2)).await.unwrap();
    h.clock.advance(Duration::from_secs(1));
    assert_eq!(
        h.verifier.verify(&h.with_status(2)).await,
        Err(Rejection::Revoked)
    );
}

#[tokio::test]
async fn the_ttl_is_bounded() {
    let h = Harness::start().await;
    *h.issuer.ttl.lock().unwrap() = Some(1);
    h.verifier.verify(&h.with_status(0)).await.unwrap();
    h.clock.advance(Duration::from_secs(9));
    h.verifier.verify(&h.with_status(0)).await.unwrap();
    assert_eq!(
        h.issuer.list_fetches.load(Ordering::SeqCst),
        1,
        "10 s at least"
    );
    *h.issuer.ttl.lock().unwrap() = Some(86_400);
    h.clock.advance(Duration::from_secs(1));
    h.verifier.verify(&h.with_status(0)).await.unwrap();
    assert_eq!(h.issuer.list_fetches.load(Ordering::SeqCst), 2);
    h.clock.advance(Duration::from_secs(3600));
    h.verifier.verify(&h.with_status(0)).await.unwrap();
    assert_eq!(
        h.issuer.list_fetches.load(Ordering::SeqCst),
        3,
        "1 h at most"
    );
}

#[tokio::test]
async fn an_unreachable_list_fails_closed_after_the_staleness_bound() {
    let h = Harness::start_with(|b| b.staleness(Duration::from_secs(300))).await;
    *h.issuer.jwks_cache_control.lock().unwrap() = "max-age=86400".into();
    h.verifier.verify(&h.with_status(0)).await.unwrap();
    h.issuer.down.store(true, Ordering::SeqCst);
    // ttl 30 s + staleness 300 s.
    h.clock.advance(Duration::from_secs(329));
    h.verifier.verify(&h.with_status(0)).await.unwrap();
    h.clock.advance(Duration::from_secs(1));
    assert_eq!(
        h.verifier.verify(&h.with_status(0)).await,
        Err(Rejection::StatusUnavailable)
    );
    // A token without a status claim does not depend on the list.
    h.verifier.verify(&h.token(json!({}))).await.unwrap();
}

#[tokio::test]
async fn a_hostile_or_broken_list_is_refused() {
    let bomb = StatusList::encode(8, &vec![0u8; 4 << 20]);
    type Break = Box<dyn Fn(&Harness)>;
    let cases: Vec<Break> = vec![
        // Inflates past the cap.
        Box::new(move |h: &Harness| {
            let url = h.url.clone();
            let key = Arc::clone(&h.issuer.keys.lock().unwrap()[0]);
            let header = json!({"alg": "ES256", "typ": "statuslist+jwt", "kid": "k1"});
            let payload =
                json!({"sub": format!("{url}/status/1"), "status_list": {"bits": 1, "lst": bomb}});
            *h.issuer.list_body.lock().unwrap() = Some(key.sign_with(&header, &payload));
        }),
        // An access token's typ, not a list's.
        Box::new(|h: &Harness| *h.issuer.list_typ.lock().unwrap() = "at+jwt"),
        // Signed by a key the JWKS does not have under that kid.
        Box::new(|h: &Harness| {
            let attacker = TestKey::new(Alg::Es256, "k1");
            let header = json!({"alg": "ES256", "typ": "statuslist+jwt", "kid": "k1"});
            let payload = json!({"sub": format!("{}/status/1", h.url), "status_list": {"bits": 1, "lst": StatusList::encode(1, &[0])}});
            *h.issuer.list_body.lock().unwrap() = Some(attacker.sign_with(&header, &payload));
        }),
        // Not a JWS at all, or huge.
        Box::new(|h: &Harness| *h.issuer.list_body.lock().unwrap() = Some("garbage".into())),
        Box::new(|h: &Harness| *h.issuer.list_body.lock().unwrap() = Some("a".repeat(2 << 20))),
    ];
    for (n, case) in cases.iter().enumerate() {
        let h = Harness::start().await;
        case(&h);
        assert_eq!(
            h.verifier.verify(&h.with_status(0)).await,
            Err(Rejection::StatusUnavailable),
            "case {n}"
        );
    }
    // A list on another origin is never fetched.
    let h = Harness::start().await;
    let token =
        h.token(json!({"status": {"status_list": {"idx": 0, "uri": "http://192.0.2.1/status/1"}}}));
    assert_eq!(
        h.verifier.verify(&token).await,
        Err(Rejection::StatusUnavailable)
    );
}

#[tokio::test]
async fn a_slow_issuer_is_cut_off_by_the_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    // Accepts connections and never answers.
    let _silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let verifier = Verifier::builder(&url, AUDIENCE)
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    assert_eq!(verifier.warm_up().await, Err(Rejection::KeysUnavailable));
}

#[tokio::test]
async fn the_layer_and_the_extractor_answer_per_rfc_6750_and_count_causes() {
    use crate::axum::{RequireToken, VerifiedToken};
    // A current-thread runtime: the server task below records on this thread's recorder.
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _recording = metrics::set_default_local_recorder(&recorder);
    let h = Harness::start().await;
    let sub = |token: VerifiedToken| async move { token.sub.clone() };
    let app = Router::new()
        .route("/any", get(sub))
        .route(
            "/write",
            get(sub).route_layer(RequireToken::new(h.verifier.clone()).scope("write")),
        )
        .with_state(h.verifier.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rs = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::new();
    let call = |path: &str, authorization: Option<String>| {
        let mut request = http.get(format!("{rs}{path}"));
        if let Some(value) = authorization {
            request = request.header(header::AUTHORIZATION, value);
        }
        request.send()
    };
    let read = h.token(json!({}));
    let response = call("/any", Some(format!("Bearer {read}"))).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "alice");
    let response = call("/write", Some(format!("bearer {read}")))
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(
        response.headers()[header::WWW_AUTHENTICATE],
        r#"Bearer error="insufficient_scope", scope="write""#
    );
    let write = h.token(json!({"scope": "read write"}));
    let response = call("/write", Some(format!("Bearer {write}")))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let expired = h.token(json!({"exp": h.now() - 1}));
    let mut bodies = Vec::new();
    for (path, token) in [("/any", expired.as_str()), ("/write", "garbage")] {
        let response = call(path, Some(format!("Bearer {token}"))).await.unwrap();
        assert_eq!(response.status(), 401);
        assert_eq!(
            response.headers()[header::WWW_AUTHENTICATE],
            r#"Bearer error="invalid_token""#
        );
        bodies.push(response.text().await.unwrap());
    }
    assert_eq!(bodies[0], bodies[1], "the body never says why");
    for authorization in [None, Some(format!("Basic {read}")), Some("Bearer ".into())] {
        let response = call("/any", authorization).await.unwrap();
        assert_eq!(response.status(), 401);
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
    }

    let counts: HashMap<String, u64> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| key.key().name() == "tessera_verifier_rejections_total")
        .filter_map(|(key, _, _, value)| {
            let cause = key
                .key()
                .labels()
                .find(|l| l.key() == "cause")?
                .value()
                .to_owned();
            match value {
                metrics_util::debugging::DebugValue::Counter(n) => Some((cause, n)),
                _ => None,
            }
        })
        .collect();
    let expected: HashMap<String, u64> = [
        ("insufficient_scope", 1),
        ("expired", 1),
        ("malformed", 1),
        ("missing", 3),
    ]
    .into_iter()
    .map(|(cause, n)| (cause.to_owned(), n))
    .collect();
    assert_eq!(counts, expected);
}

#[cfg(not(feature = "rustls"))]
#[test]
fn an_https_issuer_needs_the_rustls_feature() {
    assert!(matches!(
        Verifier::new("https://auth.example.com", AUDIENCE),
        Err(BuildError::NoTls)
    ));
    assert!(matches!(
        Verifier::new("auth.example.com", AUDIENCE),
        Err(BuildError::BadIssuer)
    ));
}
