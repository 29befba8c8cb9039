//! Anti-forgery tokens for the browser pages: an HMAC-SHA256 tag over length-prefixed parts (the purpose, the flow cookie, the request), under a key derived from the master key so every instance accepts every other's forms. Uses: hmac, hkdf.

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::MasterKey;
use super::keys::base64url;

/// The HKDF `info` of the form-token key: distinct from every sealing purpose.
const LABEL: &[u8] = b"tessera form token v1";

/// The key that tags form tokens. Never printed.
pub struct FormKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for FormKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FormKey([redacted])")
    }
}

impl FormKey {
    /// A key of this process only (tests and tools that run without a master key): forms made
    /// by another instance are refused.
    pub fn random() -> Self {
        Self(Zeroizing::new(super::random_bytes::<32>()))
    }

    /// The tag of `parts`, base64url (43 characters).
    pub fn tag(&self, parts: &[&[u8]]) -> String {
        base64url(&self.mac(parts).finalize().into_bytes())
    }

    /// Whether `tag` is the tag of `parts`, compared in constant time.
    pub fn verify(&self, parts: &[&[u8]], tag: &str) -> bool {
        let Ok(tag) = base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            tag.as_bytes(),
        ) else {
            return false;
        };
        self.mac(parts).verify_slice(&tag).is_ok()
    }

    /// Each part is length-prefixed, so no two different lists of parts share an input.
    fn mac(&self, parts: &[&[u8]]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.0.as_slice())
            .expect("HMAC takes a key of any length");
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac
    }
}

impl MasterKey {
    /// The form-token key: HKDF-SHA256 of this key with its own label.
    pub fn form_key(&self) -> FormKey {
        let mut okm = Zeroizing::new([0u8; 32]);
        Hkdf::<Sha256>::new(None, self.expose())
            .expand(LABEL, okm.as_mut_slice())
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        FormKey(okm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_verifies_only_its_own_parts_under_its_own_key() {
        let key = MasterKey::generate().form_key();
        let tag = key.tag(&[b"sign-in", b"flow", b"request"]);
        assert_eq!(tag.len(), 43);
        assert!(key.verify(&[b"sign-in", b"flow", b"request"], &tag));
        assert!(!key.verify(&[b"consent", b"flow", b"request"], &tag));
        assert!(!key.verify(&[b"sign-in", b"other flow", b"request"], &tag));
        // Length prefixes: moving a byte from one part to the next is another input.
        assert!(!key.verify(&[b"sign-in", b"flo", b"wrequest"], &tag));
        assert!(
            !MasterKey::generate()
                .form_key()
                .verify(&[b"sign-in", b"flow", b"request"], &tag)
        );
        assert!(!key.verify(&[b"sign-in", b"flow", b"request"], ""));
        assert!(!key.verify(&[b"sign-in", b"flow", b"request"], "not base64!"));
        assert!(!key.verify(&[b"sign-in", b"flow", b"request"], &tag[..42]));
    }

    #[test]
    fn the_same_master_key_gives_the_same_form_key() {
        let text = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=";
        let one = MasterKey::from_base64(text).unwrap().form_key();
        let two = MasterKey::from_base64(text).unwrap().form_key();
        assert!(two.verify(&[b"x"], &one.tag(&[b"x"])));
        assert_eq!(format!("{one:?}"), "FormKey([redacted])");
    }
}
