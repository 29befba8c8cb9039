//! Encryption under the master key, one HKDF-SHA256 subkey (RFC 5869) per purpose, so no two purposes share a key or a nonce budget. Uses: nothing.
//!
//! Every format is AES-256-GCM with a random 96-bit nonce: a header naming the format, the
//! nonce, the ciphertext and the 16-byte tag. The header and the row's binding (a kid, a session
//! and digest) are the additional data, so a ciphertext moved to another row or relabelled does
//! not open.
//!
//! - Signing-key wrap: `tsw1`, subkey "tessera signing-key wrap v1". A few wraps per key's
//!   lifetime and per master-key rotation: far below the 2^32 random-nonce bound.
//! - Master-key check: `tsc1`, subkey "tessera master-key check v1".
//! - Refresh successor: `tss1` and the epoch (hours since the Unix epoch, u32 big-endian), subkey
//!   "tessera refresh successor seal v1" followed by the epoch: a fresh key every hour. At 1,000
//!   refreshes/s an hour's key seals 3.6 million successors (2^21.8), and the chance that two
//!   nonces under one key repeat is about n²/2^97 ≈ 2^-53 (2^-40 at 100,000 refreshes/s), where
//!   one key for everything reached the 2^32 bound in about 50 days. A successor is opened
//!   within the retry window (seconds), whose key the header names.
//!
//! The previous release's format (no header, AES-256-GCM directly under the master key) is still
//! read, never written: the signing keys and the check it wrapped, and successors it sealed.
//!
//! Successors stay random and sealed rather than derived (say, HMAC of the consumed token's
//! digest under a subkey, recomputed on a retry): a derived successor would make the subkey
//! together with any copy of the database enough to compute every session's live refresh token,
//! at any time; a sealed one exposes only the successors still in their retry window (seconds;
//! housekeeping erases them), and refresh tokens keep 256 bits straight from the CSPRNG.

use hkdf::Hkdf;
use openssl::symm::{Cipher, decrypt_aead, encrypt_aead};
use sha2::Sha256;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::keys::KeyError;
use super::{MasterKey, random_bytes};

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// What the previous release bound the master-key check to.
const LEGACY_CHECK_AAD: &[u8] = b"master_key_check";

/// What a subkey is for: its HKDF `info` and its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    SigningKeyWrap,
    MasterKeyCheck,
    /// Successors sealed in this hour (since the Unix epoch).
    SuccessorSeal(u32),
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Self::SigningKeyWrap => b"tessera signing-key wrap v1",
            Self::MasterKeyCheck => b"tessera master-key check v1",
            Self::SuccessorSeal(_) => b"tessera refresh successor seal v1",
        }
    }

    fn magic(self) -> &'static [u8; 4] {
        match self {
            Self::SigningKeyWrap => b"tsw1",
            Self::MasterKeyCheck => b"tsc1",
            Self::SuccessorSeal(_) => b"tss1",
        }
    }

    /// The HKDF `info`: the label, and for successors the epoch.
    fn info(self) -> Vec<u8> {
        let mut info = self.label().to_vec();
        if let Self::SuccessorSeal(epoch) = self {
            info.extend_from_slice(&epoch.to_be_bytes());
        }
        info
    }

    fn header(self) -> Vec<u8> {
        let mut header = self.magic().to_vec();
        if let Self::SuccessorSeal(epoch) = self {
            header.extend_from_slice(&epoch.to_be_bytes());
        }
        header
    }

    /// The purpose a sealed value's header names, if it has the header of `like`'s kind.
    fn parse(like: Self, sealed: &[u8]) -> Option<Self> {
        let rest = sealed.strip_prefix(like.magic().as_slice())?;
        match like {
            Self::SuccessorSeal(_) => {
                let epoch = rest.get(..4)?.try_into().ok()?;
                Some(Self::SuccessorSeal(u32::from_be_bytes(epoch)))
            }
            other => Some(other),
        }
    }
}

/// The hour `now` falls in, which picks the successor-sealing subkey.
fn epoch(now: OffsetDateTime) -> u32 {
    u32::try_from(now.unix_timestamp().div_euclid(3600)).unwrap_or(0)
}

impl MasterKey {
    /// The subkey for `purpose`: HKDF-SHA256 with this key as input keying material.
    fn subkey(&self, purpose: Purpose) -> Zeroizing<[u8; 32]> {
        let mut okm = Zeroizing::new([0u8; 32]);
        Hkdf::<Sha256>::new(None, self.expose())
            .expand(&purpose.info(), okm.as_mut_slice())
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        okm
    }

    /// A private signing key (a JWK), sealed for the row of `kid`.
    pub fn wrap_signing_key(&self, plaintext: &[u8], kid: &str) -> Result<Vec<u8>, KeyError> {
        self.seal_as(Purpose::SigningKeyWrap, plaintext, kid.as_bytes())
    }

    /// Opens what [`Self::wrap_signing_key`] (or the previous release) sealed for `kid`, under
    /// this key or the previous one.
    pub fn unwrap_signing_key(&self, sealed: &[u8], kid: &str) -> Result<Vec<u8>, KeyError> {
        self.open_as(
            Purpose::SigningKeyWrap,
            sealed,
            kid.as_bytes(),
            kid.as_bytes(),
        )
    }

    /// Re-encrypts a wrapped signing key under `new` (a master-key rotation).
    pub fn rewrap_signing_key(
        &self,
        sealed: &[u8],
        kid: &str,
        new: &MasterKey,
    ) -> Result<Vec<u8>, KeyError> {
        let plaintext = Zeroizing::new(self.unwrap_signing_key(sealed, kid)?);
        new.wrap_signing_key(&plaintext, kid)
    }

    /// The master-key check: a known plaintext, so a wrong key is caught before anything is
    /// written with it.
    pub fn seal_check(&self, plaintext: &[u8]) -> Result<Vec<u8>, KeyError> {
        self.seal_as(Purpose::MasterKeyCheck, plaintext, &[])
    }

    pub fn open_check(&self, sealed: &[u8]) -> Result<Vec<u8>, KeyError> {
        self.open_as(Purpose::MasterKeyCheck, sealed, &[], LEGACY_CHECK_AAD)
    }

    /// A retry-window successor, sealed under the subkey of `now`'s hour.
    pub fn seal_successor(
        &self,
        plaintext: &[u8],
        aad: &[u8],
        now: OffsetDateTime,
    ) -> Result<Vec<u8>, KeyError> {
        self.seal_as(Purpose::SuccessorSeal(epoch(now)), plaintext, aad)
    }

    /// Opens a sealed successor; `None` if no configured key opens it.
    pub fn open_successor(&self, sealed: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
        self.open_as(Purpose::SuccessorSeal(0), sealed, aad, aad)
            .ok()
    }

    fn seal_as(&self, purpose: Purpose, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, KeyError> {
        let header = purpose.header();
        let nonce = random_bytes::<NONCE_LEN>();
        let mut tag = [0u8; TAG_LEN];
        let ciphertext = encrypt_aead(
            Cipher::aes_256_gcm(),
            self.subkey(purpose).as_slice(),
            Some(&nonce),
            &[header.as_slice(), aad].concat(),
            plaintext,
            &mut tag,
        )
        .map_err(|_| KeyError::Encrypt)?;
        Ok([header.as_slice(), &nonce, &ciphertext, &tag].concat())
    }

    /// Tries the current format under each configured key, then the previous release's.
    fn open_as(
        &self,
        like: Purpose,
        sealed: &[u8],
        aad: &[u8],
        legacy_aad: &[u8],
    ) -> Result<Vec<u8>, KeyError> {
        if let Some(purpose) = Purpose::parse(like, sealed) {
            let header = purpose.header();
            let body = &sealed[header.len()..];
            let aad = [header.as_slice(), aad].concat();
            for key in self.readers() {
                if let Ok(plain) = open_gcm(key.subkey(purpose).as_slice(), body, &aad) {
                    return Ok(plain);
                }
            }
        }
        self.readers()
            .find_map(|key| open_gcm(key.expose(), sealed, legacy_aad).ok())
            .ok_or(KeyError::Decrypt)
    }
}

/// nonce || ciphertext || tag under `key`.
fn open_gcm(key: &[u8], sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, KeyError> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(KeyError::Decrypt);
    }
    let (nonce, rest) = sealed.split_at(NONCE_LEN);
    let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
    decrypt_aead(
        Cipher::aes_256_gcm(),
        key,
        Some(nonce),
        aad,
        ciphertext,
        tag,
    )
    .map_err(|_| KeyError::Decrypt)
}

/// The previous release's format, for the tests that read it.
#[cfg(test)]
pub(crate) fn legacy_seal(master: &MasterKey, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
    let nonce = random_bytes::<NONCE_LEN>();
    let mut tag = [0u8; TAG_LEN];
    let ciphertext = encrypt_aead(
        Cipher::aes_256_gcm(),
        master.expose(),
        Some(&nonce),
        aad,
        plaintext,
        &mut tag,
    )
    .unwrap();
    [nonce.as_slice(), &ciphertext, &tag].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PURPOSES: [Purpose; 4] = [
        Purpose::SigningKeyWrap,
        Purpose::MasterKeyCheck,
        Purpose::SuccessorSeal(0),
        Purpose::SuccessorSeal(1),
    ];

    #[test]
    fn subkeys_differ_per_purpose_and_from_the_master_key() {
        let master = MasterKey::generate();
        let subkeys: Vec<[u8; 32]> = PURPOSES.iter().map(|p| *master.subkey(*p)).collect();
        for (i, a) in subkeys.iter().enumerate() {
            assert_ne!(a, master.expose(), "{:?} is the master key", PURPOSES[i]);
            for (j, b) in subkeys.iter().enumerate().skip(i + 1) {
                assert_ne!(a, b, "{:?} and {:?} share a key", PURPOSES[i], PURPOSES[j]);
            }
        }
        // Deterministic (a restart derives the same keys), and per master key.
        assert_eq!(*master.subkey(Purpose::SigningKeyWrap), subkeys[0]);
        let other = MasterKey::generate();
        assert_ne!(*other.subkey(Purpose::SigningKeyWrap), subkeys[0]);
    }

    /// RFC 5869 test case 1 through the same HKDF the subkeys use, so the derivation is the
    /// standard one.
    #[test]
    fn hkdf_is_rfc5869() {
        let ikm = [0x0b; 22];
        let salt: Vec<u8> = (0x00..=0x0c).collect();
        let info: Vec<u8> = (0xf0..=0xf9).collect();
        let mut okm = [0u8; 42];
        Hkdf::<Sha256>::new(Some(&salt), &ikm)
            .expand(&info, &mut okm)
            .unwrap();
        assert_eq!(
            okm.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
        );
    }

    #[test]
    fn each_purpose_opens_only_its_own_ciphertexts() {
        let master = MasterKey::generate();
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let wrapped = master.wrap_signing_key(b"jwk", "kid-1").unwrap();
        let check = master.seal_check(b"check").unwrap();
        let successor = master.seal_successor(b"tsr_x", b"row", now).unwrap();
        assert_eq!(
            master.unwrap_signing_key(&wrapped, "kid-1").unwrap(),
            b"jwk"
        );
        assert_eq!(master.open_check(&check).unwrap(), b"check");
        assert_eq!(master.open_successor(&successor, b"row").unwrap(), b"tsr_x");
        // Bound to the row, and to the purpose.
        assert!(master.unwrap_signing_key(&wrapped, "kid-2").is_err());
        assert!(master.open_successor(&successor, b"another row").is_none());
        assert!(master.open_check(&wrapped).is_err());
        assert!(master.unwrap_signing_key(&check, "kid-1").is_err());
        assert!(master.open_successor(&wrapped, b"kid-1").is_none());
        // The raw master key opens none of them.
        for sealed in [&wrapped, &check, &successor] {
            assert!(open_gcm(master.expose(), &sealed[4..], b"kid-1").is_err());
        }
    }

    #[test]
    fn successors_are_sealed_under_the_hours_key() {
        let master = MasterKey::generate();
        let t = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let a = master.seal_successor(b"s", b"row", t).unwrap();
        let b = master
            .seal_successor(b"s", b"row", t + time::Duration::hours(1))
            .unwrap();
        assert_eq!(&a[4..8], &(1_800_000_000u32 / 3600).to_be_bytes());
        assert_ne!(&a[4..8], &b[4..8]);
        // Opened after the hour turned, from the epoch the header names.
        assert_eq!(master.open_successor(&a, b"row").unwrap(), b"s");
        // A header naming another hour does not open it.
        let mut moved = a.clone();
        moved[4..8].copy_from_slice(&b[4..8]);
        assert!(master.open_successor(&moved, b"row").is_none());
    }

    #[test]
    fn the_previous_release_format_still_opens() {
        let master = MasterKey::generate();
        let key = legacy_seal(&master, b"jwk", b"kid-1");
        let check = legacy_seal(&master, b"check", LEGACY_CHECK_AAD);
        let successor = legacy_seal(&master, b"tsr_x", b"row");
        assert_eq!(master.unwrap_signing_key(&key, "kid-1").unwrap(), b"jwk");
        assert_eq!(master.open_check(&check).unwrap(), b"check");
        assert_eq!(master.open_successor(&successor, b"row").unwrap(), b"tsr_x");
        assert!(
            MasterKey::generate()
                .unwrap_signing_key(&key, "kid-1")
                .is_err()
        );
        // Garbage is refused, not a panic.
        for junk in [&b""[..], b"tsw1", b"tss1\0\0", b"tsc1short"] {
            assert!(master.unwrap_signing_key(junk, "kid-1").is_err());
            assert!(master.open_check(junk).is_err());
            assert!(master.open_successor(junk, b"row").is_none());
        }
    }

    #[test]
    fn a_previous_key_reads_but_never_writes() {
        let old = MasterKey::generate();
        let old_wrap = old.wrap_signing_key(b"jwk", "kid").unwrap();
        let legacy = legacy_seal(&old, b"jwk", b"kid");
        let old_bytes = *old.expose();
        let new = MasterKey::generate();
        let new_bytes = *new.expose();
        assert!(new.unwrap_signing_key(&old_wrap, "kid").is_err());
        let both = new.with_previous(Some(old));
        assert!(both.has_previous());
        assert_eq!(both.unwrap_signing_key(&old_wrap, "kid").unwrap(), b"jwk");
        assert_eq!(both.unwrap_signing_key(&legacy, "kid").unwrap(), b"jwk");
        // What it writes opens under the new key alone.
        let written = both.wrap_signing_key(b"jwk", "kid").unwrap();
        let new_alone = MasterKey::new(new_bytes);
        let old_alone = MasterKey::new(old_bytes);
        assert_eq!(
            new_alone.unwrap_signing_key(&written, "kid").unwrap(),
            b"jwk"
        );
        assert!(old_alone.unwrap_signing_key(&written, "kid").is_err());
        let rewrapped = old_alone
            .rewrap_signing_key(&legacy, "kid", &new_alone)
            .unwrap();
        assert_eq!(
            new_alone.unwrap_signing_key(&rewrapped, "kid").unwrap(),
            b"jwk"
        );
        assert!(old_alone.unwrap_signing_key(&rewrapped, "kid").is_err());
    }
}
