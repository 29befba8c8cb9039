//! Key material and randomness: the master key, signing keys and the CSPRNG. Nothing outside this module touches raw key bytes. Uses: model.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::TryRngCore;
use rand::rngs::OsRng;
use secrecy::{ExposeSecret, SecretBox};

pub mod form_tokens;
pub mod keys;
mod sealing;
pub mod secrets;

/// Fills a buffer from the operating system's CSPRNG.
///
/// Panics only if the OS cannot provide randomness, in which case no secret may be generated.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    OsRng
        .try_fill_bytes(&mut bytes)
        .expect("the operating system's random number generator failed");
    bytes
}

/// A 128-bit random identifier, base64url (a `jti`): from the thread's CSPRNG, seeded by the
/// OS, so the token hot path makes no system call for it.
pub fn token_id() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    keys::base64url(&bytes)
}

/// The 32-byte key that encrypts private signing keys (and retry-window successors) at rest.
///
/// It is never used directly: each purpose encrypts under its own HKDF subkey (see
/// [`sealing`]). During a master-key rotation it may carry the key it replaces, which is
/// accepted for reading only. It never enters the database and never prints: `Debug` is
/// redacted and there is no `Display`.
pub struct MasterKey {
    key: SecretBox<[u8; 32]>,
    previous: Option<Box<MasterKey>>,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    #[error("must be the base64 encoding of exactly 32 bytes")]
    Malformed,
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot create {path}: {source}")]
    Create { path: PathBuf, source: io::Error },
    #[error(
        "{key_file} is missing but {database_file} exists: restore the key from your backup (a new key could not decrypt the signing keys)"
    )]
    Lost {
        key_file: PathBuf,
        database_file: PathBuf,
    },
    #[error("TESSERA_MASTER_KEY is required with PostgreSQL (or TESSERA_MASTER_KEY_FILE)")]
    Missing,
}

impl MasterKey {
    /// Decodes the base64 text form (standard alphabet, padding optional, surrounding whitespace ignored).
    pub fn from_base64(text: &str) -> Result<Self, MasterKeyError> {
        let trimmed = text.trim().trim_end_matches('=');
        let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(trimmed)
            .map_err(|_| MasterKeyError::Malformed)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| MasterKeyError::Malformed)?;
        Ok(Self::new(key))
    }

    fn new(key: [u8; 32]) -> Self {
        Self {
            key: SecretBox::new(Box::new(key)),
            previous: None,
        }
    }

    pub fn generate() -> Self {
        Self::new(random_bytes::<32>())
    }

    /// This key, also accepting what `previous` encrypted (TESSERA_MASTER_KEY_PREVIOUS, while a
    /// master-key rotation rolls out). What this key writes is always under itself.
    pub fn with_previous(mut self, previous: Option<MasterKey>) -> Self {
        self.previous = previous.map(|mut p| {
            p.previous = None;
            Box::new(p)
        });
        self
    }

    /// Whether a previous key is configured for reading.
    pub fn has_previous(&self) -> bool {
        self.previous.is_some()
    }

    /// This key, then the previous one: the keys tried when reading.
    fn readers(&self) -> impl Iterator<Item = &MasterKey> {
        std::iter::once(self).chain(self.previous.as_deref())
    }

    pub fn read_file(path: &Path) -> Result<Self, MasterKeyError> {
        let text = fs::read_to_string(path).map_err(|source| MasterKeyError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_base64(&text).map_err(|_| MasterKeyError::Read {
            path: path.to_owned(),
            source: io::Error::new(io::ErrorKind::InvalidData, "not base64 of exactly 32 bytes"),
        })
    }

    /// Reads the key file, or creates it (mode 0600, never overwriting) with a fresh key.
    /// Returns the key and whether it was just created.
    pub fn read_or_create_file(path: &Path) -> Result<(Self, bool), MasterKeyError> {
        if path.exists() {
            return Ok((Self::read_file(path)?, false));
        }
        let create_err = |source| MasterKeyError::Create {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir(dir).map_err(create_err)?;
        }
        // Written to a temporary file and linked into place: a crash never leaves a half-written
        // key file, and an existing key is never overwritten.
        let key = Self::generate();
        let temporary = path.with_extension(format!("tmp-{}", std::process::id()));
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let written = options.open(&temporary).and_then(|mut file| {
            file.write_all(format!("{}\n", STANDARD.encode(key.expose())).as_bytes())?;
            file.sync_all()
        });
        let linked = written.and_then(|()| fs::hard_link(&temporary, path));
        let _ = fs::remove_file(&temporary);
        match linked {
            Ok(()) => {}
            // Another process created it meanwhile: use theirs.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Ok((Self::read_file(path)?, false));
            }
            Err(e) => return Err(create_err(e)),
        }
        Ok((key, true))
    }

    pub(crate) fn expose(&self) -> &[u8; 32] {
        self.key.expose_secret()
    }
}

/// Creates a directory (and its parents) readable by the owner only.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_key_round_trips_through_its_file_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data/master.key");
        let (created, fresh) = MasterKey::read_or_create_file(&path).unwrap();
        assert!(fresh);
        let (read, fresh_again) = MasterKey::read_or_create_file(&path).unwrap();
        assert!(!fresh_again);
        assert_eq!(created.expose(), read.expose());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }

    #[test]
    fn master_key_must_be_32_bytes_of_base64() {
        assert!(MasterKey::from_base64(&STANDARD.encode([7u8; 32])).is_ok());
        assert!(MasterKey::from_base64(&STANDARD.encode([7u8; 31])).is_err());
        assert!(MasterKey::from_base64("not base64!").is_err());
        assert!(MasterKey::from_base64("").is_err());
    }

    #[test]
    fn master_key_debug_is_redacted() {
        let key = MasterKey::from_base64(&STANDARD.encode([0x41u8; 32])).unwrap();
        let shown = format!("{key:?}");
        assert_eq!(shown, "MasterKey([redacted])");
    }
}
