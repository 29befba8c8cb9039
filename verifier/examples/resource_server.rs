//! A sample resource server that accepts Tessera's access tokens.
//!
//! ```text
//! TESSERA_RS_AUDIENCE=https://api.example.com cargo run -p tessera-verifier --example resource_server
//! ```
//!
//! Settings: `TESSERA_RS_LISTEN` (default `127.0.0.1:8090`), `TESSERA_RS_ISSUER` (default
//! `http://127.0.0.1:8080`), `TESSERA_RS_AUDIENCE` (required). Routes: `GET /whoami` (any valid
//! token) answers `{"sub", "client_id", "scope"}`; `GET /write` needs the scope `write`;
//! `GET /healthz` answers 200.

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use tessera_verifier::Verifier;
use tessera_verifier::axum::{RequireToken, VerifiedToken};

/// The routes, on a verifier for the issuer and audience.
pub fn app(verifier: Verifier) -> Router {
    Router::new()
        .route("/whoami", get(whoami))
        .route(
            "/write",
            get(whoami).route_layer(RequireToken::new(verifier.clone()).scope("write")),
        )
        .route("/healthz", get(|| async { "ok" }))
        .with_state(verifier)
}

/// Who the token speaks for.
async fn whoami(token: VerifiedToken) -> Json<Value> {
    Json(json!({"sub": token.sub, "client_id": token.client_id, "scope": token.scope}))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let setting =
        |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
    let listen = setting("TESSERA_RS_LISTEN", "127.0.0.1:8090");
    let issuer = setting("TESSERA_RS_ISSUER", "http://127.0.0.1:8080");
    let Ok(audience) = std::env::var("TESSERA_RS_AUDIENCE") else {
        eprintln!("TESSERA_RS_AUDIENCE is required: the audience this resource server accepts");
        std::process::exit(2);
    };
    let verifier = Verifier::new(issuer.clone(), audience.clone())?;
    if verifier.warm_up().await.is_err() {
        eprintln!("warning: {issuer} did not answer yet; keys will be fetched on first use");
    }
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    eprintln!("resource server on http://{listen} for {audience}, tokens of {issuer}");
    axum::serve(listener, app(verifier)).await?;
    Ok(())
}
