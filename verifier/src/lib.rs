//! Accept Tessera's access tokens safely in a resource server.
//!
//! The crate's core (always built) holds the rules Tessera itself verifies with:
//! - [`jws::verify`]: the typed header parse (only `alg`, `typ`, `kid` are read; `jku`, `x5u`,
//!   `jwk`, `x5c`, `x5t`, `x5t#S256` and `crit` are refused, never followed), `typ` `at+jwt`,
//!   the algorithm taken from the key and never from the token (no `none`, no HMAC), an unknown
//!   `kid` refused;
//! - [`Rules`]: `iss`, `aud`, `exp`, `nbf` and `iat` with a bounded leeway;
//! - [`status::StatusList`]: the Token Status List bit array.
//!
//! Signatures are checked with `ring` (ES256, EdDSA, RS256, PS256): no system OpenSSL, no async
//! runtime for the core.
//!
//! With the default `http` feature, [`Verifier`] discovers the issuer's JWKS (and status lists)
//! from its RFC 8414 metadata and caches them, and [`axum`] gives the [`axum::VerifiedToken`]
//! extractor and the [`axum::RequireToken`] layer; the `rustls` feature adds HTTPS to the
//! issuer. A complete resource server:
//!
//! ```no_run
//! # #[cfg(feature = "http")]
//! # mod app {
//! use axum::routing::get;
//! use axum::{Json, Router};
//! use serde_json::{Value, json};
//! use tessera_verifier::Verifier;
//! use tessera_verifier::axum::{RequireToken, VerifiedToken};
//!
//! async fn whoami(token: VerifiedToken) -> Json<Value> {
//!     Json(json!({"sub": token.sub, "client_id": token.client_id, "scope": token.scope}))
//! }
//!
//! pub async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // Tokens of this issuer, for this audience; keys and lists are fetched on first use.
//!     let verifier = Verifier::new("https://auth.example.com", "https://api.example.com")?;
//!     let app = Router::new()
//!         // Any valid token: the extractor verifies it with the verifier in the state.
//!         .route("/whoami", get(whoami))
//!         // A valid token with the scope `write`, else 401 or 403 before the handler runs.
//!         .route(
//!             "/write",
//!             get(whoami).route_layer(RequireToken::new(verifier.clone()).scope("write")),
//!         )
//!         .with_state(verifier);
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:8090").await?;
//!     axum::serve(listener, app).await?;
//!     Ok(())
//! }
//! # }
//! # fn main() {}
//! ```
//!
//! Without the `http` feature, the rules alone, with keys the caller holds:
//!
//! ```
//! use tessera_verifier::{Claims, Rejection, Rules, jws::PublicKey};
//!
//! let key = PublicKey::from_jwk(r#"{"kty":"EC","crv":"P-256","alg":"ES256","kid":"k1",
//!     "x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",
//!     "y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"}"#).unwrap();
//! let rules = Rules::new("https://issuer.example").audience("https://api.example");
//! let now = 1_700_000_000;
//! let verdict = rules.verify::<Claims, _>("not.a.token", |kid| (kid == key.kid()).then_some(&key), now);
//! assert_eq!(verdict, Err(Rejection::Malformed));
//! ```

#[cfg(feature = "http")]
pub mod axum;
pub mod claims;
pub mod jws;
pub mod status;
#[cfg(feature = "http")]
mod verifier;

pub use claims::{Audience, Claims, Rules};
#[cfg(feature = "http")]
pub use verifier::{
    BuildError, Clock, DEFAULT_JWKS_MAX_AGE, DEFAULT_STATUS_TTL, MAX_JWKS_MAX_AGE, RETRY_INTERVAL,
    STATUS_TTL_BOUNDS, SystemClock, UNKNOWN_KID_REFETCH_INTERVAL, Verifier, VerifierBuilder,
};

/// Why a token was refused. Each cause is distinct for logs, metrics and tests; a resource
/// server answers every one the same way (401 `invalid_token`), so none helps an attacker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Rejection {
    #[error("not a compact JWS")]
    Malformed,
    #[error("header carries a key reference or critical extension we never follow")]
    ForbiddenHeader,
    #[error("header names no kid we know")]
    UnknownKey,
    #[error("wrong typ")]
    WrongType,
    #[error("alg is not the key's algorithm")]
    WrongAlgorithm,
    #[error("signature does not verify with the key")]
    BadSignature,
    #[error("claims are malformed")]
    MalformedClaims,
    #[error("wrong issuer")]
    WrongIssuer,
    #[error("wrong audience")]
    WrongAudience,
    #[error("expired")]
    Expired,
    #[error("not yet valid")]
    NotYetValid,
    #[error("revoked or suspended in its status list")]
    Revoked,
    #[error("status index out of the list's range")]
    StatusOutOfRange,
    #[error("status list unavailable for longer than the staleness bound")]
    StatusUnavailable,
    #[error("issuer keys unavailable")]
    KeysUnavailable,
}

impl Rejection {
    /// A short stable name, for a metric label or a log field.
    pub fn cause(self) -> &'static str {
        match self {
            Rejection::Malformed => "malformed",
            Rejection::ForbiddenHeader => "forbidden_header",
            Rejection::UnknownKey => "unknown_key",
            Rejection::WrongType => "wrong_type",
            Rejection::WrongAlgorithm => "wrong_algorithm",
            Rejection::BadSignature => "bad_signature",
            Rejection::MalformedClaims => "malformed_claims",
            Rejection::WrongIssuer => "wrong_issuer",
            Rejection::WrongAudience => "wrong_audience",
            Rejection::Expired => "expired",
            Rejection::NotYetValid => "not_yet_valid",
            Rejection::Revoked => "revoked",
            Rejection::StatusOutOfRange => "status_out_of_range",
            Rejection::StatusUnavailable => "status_unavailable",
            Rejection::KeysUnavailable => "keys_unavailable",
        }
    }
}
