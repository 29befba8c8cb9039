//! Client secrets and passwords: server-generated 256-bit secrets kept as SHA-256 digests and compared in constant time; human-chosen ones hashed with argon2id. Uses: nothing.

use std::fmt;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

use super::keys::base64url;
use super::random_bytes;

/// The prefix that lets secret scanners spot a leaked client secret.
pub const CLIENT_SECRET_PREFIX: &str = "tss_";

/// OWASP's argon2id baseline: 19 MiB, two passes, one lane (public for the load generator).
pub const ARGON2_MEMORY_KIB: u32 = 19_456;
pub const ARGON2_ITERATIONS: u32 = 2;
pub const ARGON2_LANES: u32 = 1;

/// A client secret in clear: only ever shown once, at creation or rotation. No `Display`, no
/// `Serialize`, a redacted `Debug`; `expose` is the only way out.
pub struct ClientSecret(String);

impl ClientSecret {
    /// `tss_` + base64url of 32 random bytes (256 bits).
    pub fn generate() -> Self {
        Self(format!(
            "{CLIENT_SECRET_PREFIX}{}",
            base64url(&random_bytes::<32>())
        ))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn digest(&self) -> [u8; 32] {
        sha256(self.0.as_bytes())
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret([redacted])")
    }
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    openssl::sha::sha256(bytes)
}

/// Whether `presented` hashes to `digest`, in time independent of where they differ.
pub fn digest_matches(presented: &str, digest: &[u8; 32]) -> bool {
    openssl::memcmp::eq(&sha256(presented.as_bytes()), digest)
}

fn argon2() -> Argon2<'static> {
    let params = Params::new(ARGON2_MEMORY_KIB, ARGON2_ITERATIONS, ARGON2_LANES, None)
        .expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// An argon2id PHC string for a human-chosen secret. CPU- and memory-heavy: call it off the
/// async runtime, with bounded concurrency (see `domain::passwords`).
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::encode_b64(&random_bytes::<16>()).expect("16 bytes make a valid salt");
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2id hashing of a bounded input succeeds")
        .to_string()
}

/// Checks a password against a PHC string, with the parameters the string records. A
/// malformed string never matches.
pub fn verify_password(phc: &str, password: &str) -> bool {
    PasswordHash::new(phc)
        .is_ok_and(|hash| argon2().verify_password(password.as_bytes(), &hash).is_ok())
}

/// As [`verify_password`], computing in `memory` (grown once to the hash's size, then reused):
/// a hashing thread that keeps its buffer allocates and faults in 19 MiB once, not per login,
/// and memory stays at threads x 19 MiB however many logins come.
pub fn verify_password_in(phc: &str, password: &str, memory: &mut Vec<Block>) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    if hash.algorithm != Algorithm::Argon2id.ident() {
        return false;
    }
    let (Ok(params), Some(expected), Some(salt)) = (Params::try_from(&hash), hash.hash, hash.salt)
    else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let version = hash
        .version
        .and_then(|v| Version::try_from(v).ok())
        .unwrap_or(Version::V0x13);
    let block_count = params.block_count();
    grow_hashing_memory(memory, block_count);
    let mut out = vec![0u8; expected.len()];
    let argon = Argon2::new(Algorithm::Argon2id, version, params);
    argon
        .hash_password_into_with_memory(
            password.as_bytes(),
            salt,
            &mut out,
            &mut memory[..block_count],
        )
        .is_ok()
        && openssl::memcmp::eq(&out, expected.as_bytes())
}

/// Grows a hashing thread's buffer to `blocks`, asking the kernel to back it with huge pages
/// before it is first touched: argon2id reads its 19 MiB in a data-dependent order, and with
/// 4 KiB pages nearly every read misses the TLB.
fn grow_hashing_memory(memory: &mut Vec<Block>, blocks: usize) {
    if memory.len() >= blocks {
        return;
    }
    let mut fresh: Vec<Block> = Vec::with_capacity(blocks);
    advise_huge_pages(fresh.as_ptr().cast(), blocks * std::mem::size_of::<Block>());
    fresh.resize(blocks, Block::new());
    *memory = fresh;
}

/// `MADV_HUGEPAGE` over the 2 MiB-aligned part of `len` bytes at `start`. A hint only: where
/// transparent huge pages are off, nothing changes.
#[cfg(target_os = "linux")]
fn advise_huge_pages(start: *const u8, len: usize) {
    const HUGE_PAGE: usize = 2 << 20;
    let first = (start as usize).next_multiple_of(HUGE_PAGE);
    let last = (start as usize + len) / HUGE_PAGE * HUGE_PAGE;
    if last > first {
        // SAFETY: [first, last) lies inside one live allocation owned by the caller, and
        // MADV_HUGEPAGE changes only how the kernel backs those pages, never their contents.
        unsafe {
            libc::madvise(
                first as *mut libc::c_void,
                last - first,
                libc::MADV_HUGEPAGE,
            );
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_start: *const u8, _len: usize) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_secrets_are_prefixed_256_bit_and_redacted() {
        let secret = ClientSecret::generate();
        assert!(secret.expose().starts_with("tss_"));
        // 32 bytes of base64url without padding: 43 characters.
        assert_eq!(secret.expose().len(), 4 + 43);
        assert_ne!(secret.expose(), ClientSecret::generate().expose());
        assert_eq!(format!("{secret:?}"), "ClientSecret([redacted])");
        assert!(digest_matches(secret.expose(), &secret.digest()));
        assert!(!digest_matches("tss_wrong", &secret.digest()));
    }

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let phc = hash_password("correct horse");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_password(&phc, "correct horse"));
        assert!(!verify_password(&phc, "Correct horse"));
        assert!(!verify_password("not a phc string", "correct horse"));
    }

    #[test]
    fn verifying_in_reused_memory_agrees_with_the_crate() {
        let phc = hash_password("correct horse");
        let mut memory = Vec::new();
        for _ in 0..2 {
            assert!(verify_password_in(&phc, "correct horse", &mut memory));
            assert!(!verify_password_in(&phc, "wrong horse", &mut memory));
        }
        assert_eq!(memory.len(), ARGON2_MEMORY_KIB as usize);
        assert!(!verify_password_in(
            "$argon2i$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA",
            "x",
            &mut memory
        ));
        assert!(!verify_password_in("garbage", "x", &mut memory));
    }
}
