//! Signing keys through josekit: generation, RFC 7638 thumbprints, AES-256-GCM sealing under the master key, JWS signing and pinned verification. Uses: model.

use josekit::jwk::Jwk;
use josekit::jwk::alg::ed::EdCurve;
use josekit::jws::{self, ES256, EdDSA, JwsSigner, JwsVerifier, PS256, RS256};
use openssl::symm::{Cipher, decrypt_aead, encrypt_aead};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::{MasterKey, random_bytes};
use crate::model::{NewSigningKey, SigningAlg};

const RSA_BITS: u32 = 3072;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key generation or parsing failed")]
    Jose(#[from] josekit::JoseError),
    /// Wrong master key, or a ciphertext that was tampered with or moved to another row.
    #[error("cannot decrypt: wrong master key or altered ciphertext")]
    Decrypt,
    #[error("encryption failed")]
    Encrypt,
}

/// Generates a fresh key pair for `alg` and seals its private half under `master`.
pub fn generate(alg: SigningAlg, master: &MasterKey) -> Result<NewSigningKey, KeyError> {
    let mut private = match alg {
        SigningAlg::Es256 => ES256.generate_key_pair()?.to_jwk_key_pair(),
        SigningAlg::EdDsa => EdDSA.generate_key_pair(EdCurve::Ed25519)?.to_jwk_key_pair(),
        // PS256 uses a plain RSA key (kty RSA): what every JWT library expects in a JWKS.
        SigningAlg::Rs256 | SigningAlg::Ps256 => {
            RS256.generate_key_pair(RSA_BITS)?.to_jwk_key_pair()
        }
    };
    private.set_algorithm(alg.as_str());
    let kid = thumbprint(&private);
    let public = public_jwk(&private, &kid, alg)?;
    let plaintext = Zeroizing::new(private.to_string().into_bytes());
    let private_key_ciphertext = master.seal(&plaintext, kid.as_bytes())?;
    Ok(NewSigningKey {
        kid,
        alg,
        public_jwk: public.to_string(),
        private_key_ciphertext,
    })
}

/// RFC 7638 §3: SHA-256 over the required members, in lexicographic order and without
/// whitespace, base64url without padding.
pub fn thumbprint(jwk: &Jwk) -> String {
    let required: &[&str] = match jwk.key_type() {
        "EC" => &["crv", "kty", "x", "y"],
        "OKP" => &["crv", "kty", "x"],
        _ => &["e", "kty", "n"],
    };
    // serde_json's Map is ordered by key, and these values are plain strings.
    let members: Map<String, Value> = required
        .iter()
        .filter_map(|name| jwk.parameter(name).map(|v| ((*name).to_owned(), v.clone())))
        .collect();
    let canonical = serde_json::to_vec(&members).expect("a map of strings serialises");
    base64url(&openssl::sha::sha256(&canonical))
}

/// The public half with `kid`, `alg` and `use`, as published in the JWKS.
fn public_jwk(private: &Jwk, kid: &str, alg: SigningAlg) -> Result<Jwk, KeyError> {
    let mut public = Jwk::new(private.key_type());
    let names: &[&str] = match private.key_type() {
        "EC" => &["crv", "x", "y"],
        "OKP" => &["crv", "x"],
        _ => &["n", "e"],
    };
    for name in names {
        if let Some(value) = private.parameter(name) {
            public.set_parameter(name, Some(value.clone()))?;
        }
    }
    public.set_key_id(kid);
    public.set_algorithm(alg.as_str());
    public.set_key_use("sig");
    Ok(public)
}

/// A key that signs: the active key, decrypted once when the key set changes.
pub struct Signer {
    pub kid: String,
    pub alg: SigningAlg,
    inner: Box<dyn JwsSigner>,
    /// base64url of the protected header, encoded once when the key is loaded.
    encoded_header: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl Signer {
    pub fn open(
        kid: &str,
        alg: SigningAlg,
        ciphertext: &[u8],
        master: &MasterKey,
    ) -> Result<Self, KeyError> {
        let plaintext = Zeroizing::new(master.open(ciphertext, kid.as_bytes())?);
        let private = Jwk::from_bytes(&*plaintext)?;
        let inner: Box<dyn JwsSigner> = match alg {
            SigningAlg::Es256 => Box::new(ES256.signer_from_jwk(&private)?),
            SigningAlg::EdDsa => Box::new(EdDSA.signer_from_jwk(&private)?),
            SigningAlg::Rs256 => Box::new(RS256.signer_from_jwk(&private)?),
            SigningAlg::Ps256 => Box::new(PS256.signer_from_jwk(&private)?),
        };
        // RFC 9068 §2.1: access tokens are typed, so they cannot be confused with ID tokens.
        let header = serde_json::json!({ "alg": alg.as_str(), "typ": "at+jwt", "kid": kid });
        Ok(Self {
            kid: kid.to_owned(),
            alg,
            inner,
            encoded_header: base64url(header.to_string().as_bytes()),
        })
    }

    /// A compact JWS (RFC 7515 §7.1) of `payload` with header `{alg, typ: at+jwt, kid}`. The
    /// header is encoded once per key; josekit signs the signing input.
    pub fn sign(&self, payload: &[u8]) -> Result<String, KeyError> {
        use base64::Engine;
        let engine = &base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut token =
            String::with_capacity(self.encoded_header.len() + payload.len() * 4 / 3 + 100);
        token.push_str(&self.encoded_header);
        token.push('.');
        engine.encode_string(payload, &mut token);
        let signature = self.inner.sign(token.as_bytes())?;
        token.push('.');
        engine.encode_string(signature, &mut token);
        Ok(token)
    }
}

/// A published key that verifies; its algorithm is fixed by the key, never by a token.
pub struct Verifier {
    pub kid: String,
    pub alg: SigningAlg,
    inner: Box<dyn JwsVerifier>,
}

impl Verifier {
    pub fn from_public_jwk(kid: &str, alg: SigningAlg, public_jwk: &str) -> Result<Self, KeyError> {
        let public = Jwk::from_bytes(public_jwk.as_bytes())?;
        let inner: Box<dyn JwsVerifier> = match alg {
            SigningAlg::Es256 => Box::new(ES256.verifier_from_jwk(&public)?),
            SigningAlg::EdDsa => Box::new(EdDSA.verifier_from_jwk(&public)?),
            SigningAlg::Rs256 => Box::new(RS256.verifier_from_jwk(&public)?),
            SigningAlg::Ps256 => Box::new(PS256.verifier_from_jwk(&public)?),
        };
        Ok(Self {
            kid: kid.to_owned(),
            alg,
            inner,
        })
    }
}

/// Why a JWS was refused, for logs and tests; callers answer every case the same way.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum JwsRejection {
    #[error("not a compact JWS")]
    Malformed,
    #[error("header names no kid we know")]
    UnknownKey,
    #[error("header carries a key reference or critical extension we never follow")]
    ForbiddenHeader,
    #[error("wrong typ")]
    WrongType,
    #[error("signature, alg or kid does not match our key")]
    BadSignature,
}

/// Verifies a compact JWS with the key `select` returns for its `kid`: the key decides the
/// algorithm (`alg` must equal it), and `jku`, `x5u`, `jwk`, `x5c` and `crit` are refused
/// outright, never followed (RFC 8725 §3.1, §3.10).
pub fn verify<'a>(
    token: &str,
    select: impl Fn(&str) -> Option<&'a Verifier>,
) -> Result<Vec<u8>, JwsRejection> {
    let header = unverified_header(token)?;
    for forbidden in ["jku", "x5u", "jwk", "x5c", "x5t", "x5t#S256", "crit"] {
        if header.contains_key(forbidden) {
            return Err(JwsRejection::ForbiddenHeader);
        }
    }
    let kid = header
        .get("kid")
        .and_then(Value::as_str)
        .ok_or(JwsRejection::UnknownKey)?;
    let verifier = select(kid).ok_or(JwsRejection::UnknownKey)?;
    // RFC 9068 §4: "at+jwt" or its full media type, compared case-insensitively.
    let typ = header
        .get("typ")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !typ.eq_ignore_ascii_case("at+jwt") && !typ.eq_ignore_ascii_case("application/at+jwt") {
        return Err(JwsRejection::WrongType);
    }
    jws::deserialize_compact(token, verifier.inner.as_ref())
        .map(|(payload, _)| payload)
        .map_err(|_| JwsRejection::BadSignature)
}

fn unverified_header(token: &str) -> Result<Map<String, Value>, JwsRejection> {
    let encoded = token.split('.').next().ok_or(JwsRejection::Malformed)?;
    if token.split('.').count() != 3 {
        return Err(JwsRejection::Malformed);
    }
    let bytes = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, encoded)
        .map_err(|_| JwsRejection::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| JwsRejection::Malformed)
}

pub fn base64url(bytes: &[u8]) -> String {
    base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes)
}

impl MasterKey {
    /// AES-256-GCM with a random 96-bit nonce; `aad` binds the ciphertext to its row (the kid),
    /// so a ciphertext copied onto another row does not decrypt. Output: nonce || ciphertext || tag.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, KeyError> {
        let nonce = random_bytes::<NONCE_LEN>();
        let mut tag = [0u8; TAG_LEN];
        let ciphertext = encrypt_aead(
            Cipher::aes_256_gcm(),
            self.expose(),
            Some(&nonce),
            aad,
            plaintext,
            &mut tag,
        )
        .map_err(|_| KeyError::Encrypt)?;
        let mut sealed = Vec::with_capacity(NONCE_LEN + ciphertext.len() + TAG_LEN);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        sealed.extend_from_slice(&tag);
        Ok(sealed)
    }

    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, KeyError> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return Err(KeyError::Decrypt);
        }
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
        decrypt_aead(
            Cipher::aes_256_gcm(),
            self.expose(),
            Some(nonce),
            aad,
            ciphertext,
            tag,
        )
        .map_err(|_| KeyError::Decrypt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master() -> MasterKey {
        MasterKey::generate()
    }

    #[test]
    fn rfc7638_thumbprint_example() {
        // RFC 7638 §3.1.
        let jwk = Jwk::from_bytes(br#"{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}"#).unwrap();
        assert_eq!(
            thumbprint(&jwk),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn every_algorithm_signs_and_verifies_with_its_kid_and_public_only_jwk() {
        let master = master();
        for alg in SigningAlg::ALL {
            let key = generate(alg, &master).unwrap();
            let public: Value = serde_json::from_str(&key.public_jwk).unwrap();
            assert_eq!(public["kid"], key.kid.as_str());
            assert_eq!(public["alg"], alg.as_str());
            assert_eq!(public["use"], "sig");
            for private_member in ["d", "p", "q", "dp", "dq", "qi"] {
                assert!(
                    public.get(private_member).is_none(),
                    "{alg}: {private_member} published"
                );
            }
            let signer = Signer::open(&key.kid, alg, &key.private_key_ciphertext, &master).unwrap();
            let token = signer.sign(br#"{"sub":"x"}"#).unwrap();
            let verifier = Verifier::from_public_jwk(&key.kid, alg, &key.public_jwk).unwrap();
            let payload = verify(&token, |kid| (kid == key.kid).then_some(&verifier)).unwrap();
            assert_eq!(payload, br#"{"sub":"x"}"#);
        }
    }

    #[test]
    fn a_sealed_key_opens_only_with_its_master_key_and_its_kid() {
        let master = master();
        let key = generate(SigningAlg::Es256, &master).unwrap();
        assert!(!String::from_utf8_lossy(&key.private_key_ciphertext).contains("\"d\""));
        let other = MasterKey::generate();
        assert!(matches!(
            Signer::open(&key.kid, key.alg, &key.private_key_ciphertext, &other),
            Err(KeyError::Decrypt)
        ));
        assert!(matches!(
            Signer::open("another-kid", key.alg, &key.private_key_ciphertext, &master),
            Err(KeyError::Decrypt)
        ));
        let mut tampered = key.private_key_ciphertext.clone();
        tampered[20] ^= 1;
        assert!(Signer::open(&key.kid, key.alg, &tampered, &master).is_err());
    }

    #[test]
    fn verification_is_pinned_to_our_key() {
        let master = master();
        let key = generate(SigningAlg::Es256, &master).unwrap();
        let signer = Signer::open(&key.kid, key.alg, &key.private_key_ciphertext, &master).unwrap();
        let verifier = Verifier::from_public_jwk(&key.kid, key.alg, &key.public_jwk).unwrap();
        let select = |kid: &str| (kid == key.kid).then_some(&verifier);
        let good = signer.sign(b"{}").unwrap();
        assert!(verify(&good, select).is_ok());

        let forge = |header: Value, sig: &str| {
            let payload = good.split('.').nth(1).unwrap();
            format!(
                "{}.{payload}.{sig}",
                base64url(header.to_string().as_bytes())
            )
        };
        let real_sig = good.split('.').nth(2).unwrap();
        let kid = key.kid.as_str();
        // alg none, HS256 keyed with the public key, and a different asymmetric alg.
        for alg in ["none", "HS256", "RS256", "EdDSA"] {
            let token = forge(
                serde_json::json!({"alg": alg, "typ": "at+jwt", "kid": kid}),
                real_sig,
            );
            assert_eq!(
                verify(&token, select),
                Err(JwsRejection::BadSignature),
                "{alg}"
            );
        }
        let token = forge(
            serde_json::json!({"alg": "none", "typ": "at+jwt", "kid": kid}),
            "",
        );
        assert_eq!(verify(&token, select), Err(JwsRejection::BadSignature));
        let token = forge(
            serde_json::json!({"alg": "ES256", "typ": "at+jwt", "kid": "someone-else"}),
            real_sig,
        );
        assert_eq!(verify(&token, select), Err(JwsRejection::UnknownKey));
        let token = forge(
            serde_json::json!({"alg": "ES256", "typ": "at+jwt"}),
            real_sig,
        );
        assert_eq!(verify(&token, select), Err(JwsRejection::UnknownKey));
        for header in ["jku", "x5u", "jwk", "x5c", "crit"] {
            let token = forge(
                serde_json::json!({"alg": "ES256", "typ": "at+jwt", "kid": kid, header: "https://evil.example"}),
                real_sig,
            );
            assert_eq!(
                verify(&token, select),
                Err(JwsRejection::ForbiddenHeader),
                "{header}"
            );
        }
        for typ in ["JWT", "", "id_token+jwt"] {
            let token = forge(
                serde_json::json!({"alg": "ES256", "typ": typ, "kid": kid}),
                real_sig,
            );
            assert_eq!(
                verify(&token, select),
                Err(JwsRejection::WrongType),
                "{typ}"
            );
        }
        assert_eq!(verify("a.b", select), Err(JwsRejection::Malformed));
        assert_eq!(verify("!!!.b.c", select), Err(JwsRejection::Malformed));
    }
}
