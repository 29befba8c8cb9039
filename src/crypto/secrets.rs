//! Client secrets and passwords: server-generated 256-bit secrets kept as SHA-256 digests and compared in constant time; human-chosen ones hashed with argon2id. Uses: nothing.

use std::fmt;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use super::keys::base64url;
use super::random_bytes;

/// The prefix that lets secret scanners spot a leaked client secret.
pub const CLIENT_SECRET_PREFIX: &str = "tss_";

/// OWASP's argon2id baseline: 19 MiB, two passes, one lane.
const ARGON2_MEMORY_KIB: u32 = 19_456;
const ARGON2_ITERATIONS: u32 = 2;
const ARGON2_LANES: u32 = 1;

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
}
