//! Tessera: a standalone token issuer and authorization server.
//!
//! # Layout
//! - [`http`]: the axum router, extractors and the one error-to-response mapping (the only axum user).
//! - [`domain`]: the use cases; calls [`store`], [`crypto`] and [`clock`].
//! - [`store`]: the storage interface and its PostgreSQL and SQLite implementations (the only SQL).
//! - [`crypto`]: wraps the cryptographic crates; nothing else touches key material.
//! - [`model`]: plain data shared by every layer.
//! - [`clock`]: time comes in from outside, so tests can move it.
//! - [`config`], [`telemetry`], [`metrics`]: settings, logging, metrics.
//! - [`server`]: wiring it all together, serving with a graceful drain, and the signals that
//!   stop it.

pub mod clock;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod http;
pub mod metrics;
pub mod model;
pub mod server;
pub mod store;
pub mod telemetry;
