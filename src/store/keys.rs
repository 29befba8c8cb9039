//! Signing keys: the set, its first keys, rotation and compromise. Uses: model.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreError;
use crate::model::{AuditEvent, KeyState, NewSigningKey, SigningKey};

/// What `add_initial_signing_keys` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeysAdded {
    Added,
    /// The database had keys already (another instance won the race): nothing changed.
    AlreadyPresent,
}

/// What `rotate_signing_keys` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRotation {
    Rotated,
    /// The expected next key is no longer the next key, or another instance is changing keys
    /// right now: nothing changed.
    Skipped,
}

/// One row's ciphertext in a master-key rotation: what it was read with, and what replaces it.
#[derive(Debug, Clone)]
pub struct Rewrap {
    /// The signing key's kid (unused for the master-key check).
    pub kid: String,
    pub old: Vec<u8>,
    pub new: Vec<u8>,
}

#[async_trait]
pub trait KeyStore: Send + Sync {
    async fn list_signing_keys(&self) -> Result<Vec<SigningKey>, StoreError>;

    /// Stores the first active and next keys, unless the database has keys already.
    async fn add_initial_signing_keys(
        &self,
        active: &NewSigningKey,
        next: &NewSigningKey,
        now: OffsetDateTime,
    ) -> Result<KeysAdded, StoreError>;

    /// One rotation, atomically: the active key retires, `expected_next` becomes active and
    /// `new_next` is published as the next key.
    async fn rotate_signing_keys(
        &self,
        expected_next: &str,
        new_next: &NewSigningKey,
        now: OffsetDateTime,
    ) -> Result<KeyRotation, StoreError>;

    /// Revokes `kid` and keeps the set complete: revoking the active key promotes the next one,
    /// and a revoked active or next key is replaced by `replacement` as the next key. Returns the
    /// state the key had, or `None` for an unknown kid. The audit event, if given, is written in
    /// the same transaction; a key already revoked changes nothing and records nothing.
    async fn revoke_signing_key(
        &self,
        kid: &str,
        replacement: &NewSigningKey,
        now: OffsetDateTime,
        audit: Option<&AuditEvent>,
    ) -> Result<Option<KeyState>, StoreError>;

    /// A master-key rotation, atomically: the master-key check and every signing key's
    /// ciphertext are replaced, each only if it still holds what it was read with, and only if
    /// the database has exactly these keys. Otherwise (a key was added or changed meanwhile)
    /// nothing changes and the answer is `false`.
    async fn rewrap_keys(&self, check: &Rewrap, keys: &[Rewrap]) -> Result<bool, StoreError>;
}
