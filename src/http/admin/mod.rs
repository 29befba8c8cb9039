//! The admin API (JSON, HTTP Basic with an admin client), one file per resource: [`clients`], [`users`], [`roles`], [`keys`]; their endpoints are small and share their views, so they stay together. The audit log has its own file, `http/audit.rs`. Uses: domain, model.

use axum::http::{HeaderName, header};

pub mod clients;
pub mod keys;
pub mod roles;
pub mod users;

/// Responses carrying a secret are never cached.
fn no_store() -> [(HeaderName, &'static str); 2] {
    [
        (header::CACHE_CONTROL, "no-store"),
        (header::PRAGMA, "no-cache"),
    ]
}
