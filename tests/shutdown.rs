//! SIGTERM drains in-flight requests: the real router and `serve`, the real signal handler, a
//! real SIGTERM to this process. Its own test binary, so the signal reaches no other test.

use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use tessera::clock::SystemClock;
use tessera::http::{self, AppState};
use tessera::server::{self, Server};
use tokio::sync::Notify;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_slow_request_finish_then_stops() {
    let dir = tempfile::tempdir().unwrap();
    let config = tessera::config::Settings::default()
        .set(
            "database_url",
            format!("sqlite://{}", dir.path().join("t.db").display()),
        )
        .set("listen", "127.0.0.1:0")
        .validate()
        .unwrap();
    let server = Server::build(config, Arc::new(SystemClock)).await.unwrap();
    let issuer = Arc::clone(server.issuer());
    // The production router, plus one route that takes its time and says when it started.
    let started = Arc::new(Notify::new());
    let started_in_handler = Arc::clone(&started);
    let router = http::router(
        AppState::new(issuer, Duration::from_secs(300)),
        Duration::from_secs(15),
    )
    .route(
        "/slow",
        get(move || async move {
            started_in_handler.notify_one();
            tokio::time::sleep(Duration::from_millis(1500)).await;
            "finished"
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = server::shutdown_signal().unwrap();
    let serving = tokio::spawn(server::serve(
        listener,
        router,
        shutdown,
        Duration::from_secs(10),
    ));

    let slow = tokio::spawn(reqwest::get(format!("{url}/slow")));
    // Signal only once the request is inside its handler.
    tokio::time::timeout(Duration::from_secs(10), started.notified())
        .await
        .expect("the slow request reached its handler");
    let pid = std::process::id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );

    // The slow request still completes...
    let response = slow
        .await
        .unwrap()
        .expect("the in-flight request is answered");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "finished");
    // ...the server then stops by itself, cleanly...
    tokio::time::timeout(Duration::from_secs(5), serving)
        .await
        .expect("serve returns after draining")
        .unwrap()
        .unwrap();
    // ...and accepts nothing new.
    assert!(reqwest::get(format!("{url}/healthz")).await.is_err());
    drop(server);
}
