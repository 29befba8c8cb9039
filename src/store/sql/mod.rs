//! The SQL both dialects share, written once: the statements, and the method bodies that run them, which `postgres/` and `sqlite/` expand for their own pool and column encodings (`rows.rs`). What differs between the dialects stays in the backends' mirrored files: each backend provides `begin_write`, the lock hooks and `notify`, and the statements and methods named there. Uses: model, rows.
//!
//! The bodies are `macro_rules!` expanded once per backend rather than functions generic over
//! `sqlx::Database`: generically, every body would repeat a dozen higher-ranked bounds (one per
//! bound type, plus the executor's), and `async_trait`'s `Send` futures do not get along with
//! them. Expanded, each body is plain code for one concrete backend, type-checked for both.

pub(crate) mod audit;
pub(crate) mod authorization;
pub(crate) mod clients;
pub(crate) mod feed;
pub(crate) mod helpers;
pub(crate) mod infra;
pub(crate) mod keys;
pub(crate) mod revocations;
pub(crate) mod roles;
pub(crate) mod sessions;
pub(crate) mod status_lists;
pub(crate) mod throttle;
pub(crate) mod users;
