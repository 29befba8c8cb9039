//! Signing keys through josekit: generation, RFC 7638 thumbprints, sealing under the master key's wrap subkey, JWS signing, and the OpenSSL keys the server verifies with under tessera-verifier's rules (one implementation of the pinned rules for the server and resource servers). Uses: model.

use josekit::jwk::Jwk;
use josekit::jwk::alg::ed::EdCurve;
use josekit::jws::{ES256, EdDSA, JwsSigner, JwsVerifier, PS256, RS256};
use openssl::bn::{BigNum, BigNumContext};
use openssl::ec::{EcGroup, EcKey, EcPoint};
use openssl::ecdsa::EcdsaSig;
use openssl::nid::Nid;
use openssl::pkey::{Private, Public};
use serde_json::{Map, Value};

use zeroize::Zeroizing;

use super::MasterKey;
use crate::model::{NewSigningKey, SigningAlg};

const RSA_BITS: u32 = 3072;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key generation or parsing failed")]
    Jose(#[from] josekit::JoseError),
    /// Wrong master key, or a ciphertext that was tampered with or moved to another row.
    #[error("cannot decrypt: wrong master key or altered ciphertext")]
    Decrypt,
    #[error("encryption failed")]
    Encrypt,
    #[error("signing failed")]
    Sign,
    #[error("the public key is not a point of P-256")]
    NotOnCurve,
}

/// An ES256 signature is the fixed-width r || s of the P-256 ECDSA signature (RFC 7518 §3.4).
const ES256_HALF: usize = 32;

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
    let private_key_ciphertext = master.wrap_signing_key(&plaintext, &kid)?;
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
    inner: SignWith,
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

/// ES256, the default, goes straight to OpenSSL's ECDSA over the SHA-256 digest (josekit's
/// signer sets up an EVP context and a DER round trip per call, which costs about a quarter of a
/// signature); the other algorithms sign through josekit.
enum SignWith {
    Es256(EcKey<Private>),
    Jose(Box<dyn JwsSigner>),
}

impl Signer {
    pub fn open(
        kid: &str,
        alg: SigningAlg,
        ciphertext: &[u8],
        master: &MasterKey,
    ) -> Result<Self, KeyError> {
        let plaintext = Zeroizing::new(master.unwrap_signing_key(ciphertext, kid)?);
        let private = Jwk::from_bytes(&*plaintext)?;
        let inner = match alg {
            SigningAlg::Es256 => {
                // josekit checks the JWK (use, key_ops, alg, crv) before OpenSSL takes the key.
                ES256.signer_from_jwk(&private)?;
                let pair = josekit::jwk::alg::ec::EcKeyPair::from_jwk(&private)?;
                let der = Zeroizing::new(pair.to_raw_private_key());
                let key = EcKey::private_key_from_der(&der).map_err(|_| KeyError::Sign)?;
                SignWith::Es256(key)
            }
            SigningAlg::EdDsa => SignWith::Jose(Box::new(EdDSA.signer_from_jwk(&private)?)),
            SigningAlg::Rs256 => SignWith::Jose(Box::new(RS256.signer_from_jwk(&private)?)),
            SigningAlg::Ps256 => SignWith::Jose(Box::new(PS256.signer_from_jwk(&private)?)),
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
    /// header is encoded once per key.
    pub fn sign(&self, payload: &[u8]) -> Result<String, KeyError> {
        self.sign_with_header(&self.encoded_header, payload)
    }

    /// A compact JWS with header `{alg, typ, kid}`, for what is not an access token (a Token
    /// Status List is `statuslist+jwt`, draft-ietf-oauth-status-list §5.1).
    pub fn sign_typed(&self, typ: &str, payload: &[u8]) -> Result<String, KeyError> {
        let header = serde_json::json!({ "alg": self.alg.as_str(), "typ": typ, "kid": self.kid });
        self.sign_with_header(&base64url(header.to_string().as_bytes()), payload)
    }

    fn sign_with_header(&self, encoded_header: &str, payload: &[u8]) -> Result<String, KeyError> {
        use base64::Engine;
        let engine = &base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut token = String::with_capacity(encoded_header.len() + payload.len() * 4 / 3 + 100);
        token.push_str(encoded_header);
        token.push('.');
        engine.encode_string(payload, &mut token);
        match &self.inner {
            SignWith::Es256(key) => {
                let digest = openssl::sha::sha256(token.as_bytes());
                let signature = EcdsaSig::sign(&digest, key).map_err(|_| KeyError::Sign)?;
                let mut raw = [0u8; 2 * ES256_HALF];
                let (r, s) = raw.split_at_mut(ES256_HALF);
                signature
                    .r()
                    .to_vec_padded(ES256_HALF as i32)
                    .map(|bytes| r.copy_from_slice(&bytes))
                    .and_then(|()| signature.s().to_vec_padded(ES256_HALF as i32))
                    .map(|bytes| s.copy_from_slice(&bytes))
                    .map_err(|_| KeyError::Sign)?;
                token.push('.');
                engine.encode_string(raw, &mut token);
            }
            SignWith::Jose(signer) => {
                let signature = signer.sign(token.as_bytes())?;
                token.push('.');
                engine.encode_string(signature, &mut token);
            }
        }
        Ok(token)
    }
}

/// A published key that verifies; its algorithm is fixed by the key, never by a token.
pub struct Verifier {
    pub kid: String,
    pub alg: SigningAlg,
    inner: VerifyWith,
    verified: VerifiedSignatures,
}

/// Signatures this key has verified lately, by SHA-256 of the signing input and the signature.
/// A resource server introspects the same token for every request it serves; asked again, the
/// answer skips the public-key operation (an ES256 verification is about 55 µs here), while
/// every other check of the token (key still selectable, algorithm, claims, expiry, revocation)
/// runs each time. Sound because a kid is the key's thumbprint: the entry can only ever mean
/// "this key signed these bytes". Only successes are kept, and the memory goes with the key (a
/// revoked or retired key is no longer selected). Bounded: when full it starts over.
struct VerifiedSignatures(std::sync::Mutex<std::collections::HashSet<[u8; 32]>>);

/// Entries kept per key before [`VerifiedSignatures`] starts over (32 bytes each, plus the set's
/// own overhead: about 200 KiB at most per key).
const VERIFIED_SIGNATURES_MAX: usize = 4096;

impl VerifiedSignatures {
    fn new() -> Self {
        Self(std::sync::Mutex::new(std::collections::HashSet::new()))
    }

    fn fingerprint(signing_input: &[u8], signature: &[u8]) -> [u8; 32] {
        let mut hasher = openssl::sha::Sha256::new();
        hasher.update(signing_input);
        hasher.update(b".");
        hasher.update(signature);
        hasher.finish()
    }

    fn contains(&self, fingerprint: &[u8; 32]) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(fingerprint)
    }

    fn insert(&self, fingerprint: [u8; 32]) {
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= VERIFIED_SIGNATURES_MAX {
            seen.clear();
        }
        seen.insert(fingerprint);
    }
}

/// As [`SignWith`]: ES256 through OpenSSL's ECDSA, the others through josekit.
enum VerifyWith {
    Es256(EcKey<Public>),
    Jose(Box<dyn JwsVerifier>),
}

impl Verifier {
    pub fn from_public_jwk(kid: &str, alg: SigningAlg, public_jwk: &str) -> Result<Self, KeyError> {
        let public = Jwk::from_bytes(public_jwk.as_bytes())?;
        let inner = match alg {
            SigningAlg::Es256 => {
                // josekit checks the JWK (kty, use, key_ops, alg, crv, x, y) first.
                ES256.verifier_from_jwk(&public)?;
                VerifyWith::Es256(p256_public_key(&public).ok_or(KeyError::NotOnCurve)?)
            }
            SigningAlg::EdDsa => VerifyWith::Jose(Box::new(EdDSA.verifier_from_jwk(&public)?)),
            SigningAlg::Rs256 => VerifyWith::Jose(Box::new(RS256.verifier_from_jwk(&public)?)),
            SigningAlg::Ps256 => VerifyWith::Jose(Box::new(PS256.verifier_from_jwk(&public)?)),
        };
        Ok(Self {
            kid: kid.to_owned(),
            alg,
            inner,
            verified: VerifiedSignatures::new(),
        })
    }
}

/// The rules are tessera-verifier's; the signature check of ES256 stays OpenSSL's, which is
/// faster here than the crate's `ring` (introspection is measured against `openssl speed`).
impl tessera_verifier::jws::VerifyingKey for Verifier {
    fn alg(&self) -> tessera_verifier::jws::Alg {
        match self.alg {
            SigningAlg::Es256 => tessera_verifier::jws::Alg::Es256,
            SigningAlg::EdDsa => tessera_verifier::jws::Alg::EdDsa,
            SigningAlg::Rs256 => tessera_verifier::jws::Alg::Rs256,
            SigningAlg::Ps256 => tessera_verifier::jws::Alg::Ps256,
        }
    }

    fn verifies(&self, signing_input: &[u8], signature: &[u8]) -> bool {
        let fingerprint = VerifiedSignatures::fingerprint(signing_input, signature);
        if self.verified.contains(&fingerprint) {
            return true;
        }
        let verifies = self.checks(signing_input, signature);
        if verifies {
            self.verified.insert(fingerprint);
        }
        verifies
    }
}

impl Verifier {
    /// Whether `signature` is this key's signature of `signing_input`, by the key itself.
    fn checks(&self, signing_input: &[u8], signature: &[u8]) -> bool {
        match &self.inner {
            VerifyWith::Es256(key) => {
                if signature.len() != 2 * ES256_HALF {
                    return false;
                }
                let (r, s) = signature.split_at(ES256_HALF);
                let Ok(signature) = BigNum::from_slice(r)
                    .and_then(|r| BigNum::from_slice(s).map(|s| (r, s)))
                    .and_then(|(r, s)| EcdsaSig::from_private_components(r, s))
                else {
                    return false;
                };
                let digest = openssl::sha::sha256(signing_input);
                signature.verify(&digest, key).unwrap_or(false)
            }
            VerifyWith::Jose(verifier) => verifier.verify(signing_input, signature).is_ok(),
        }
    }
}

/// The P-256 public key of an EC JWK (`x`, `y`), checked to be a point of the curve.
fn p256_public_key(jwk: &Jwk) -> Option<EcKey<Public>> {
    let coordinate = |name: &str| {
        jwk.parameter(name)
            .and_then(Value::as_str)
            .and_then(|v| {
                base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, v).ok()
            })
            .and_then(|bytes| BigNum::from_slice(&bytes).ok())
    };
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).ok()?;
    let (x, y) = (coordinate("x")?, coordinate("y")?);
    let mut point = EcPoint::new(&group).ok()?;
    let mut ctx = BigNumContext::new().ok()?;
    point
        .set_affine_coordinates_gfp(&group, &x, &y, &mut ctx)
        .ok()?;
    let key = EcKey::from_public_key(&group, &point).ok()?;
    key.check_key().ok()?;
    Some(key)
}

pub fn base64url(bytes: &[u8]) -> String {
    base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};
    use tessera_verifier::Rejection;
    use tessera_verifier::jws::{ACCESS_TOKEN_TYP, PublicKey};

    use super::*;

    fn master() -> MasterKey {
        MasterKey::generate()
    }

    /// The verifier crate's check of a token against `key`, twice: with the server's key
    /// (OpenSSL for ES256, josekit for the others) and with the crate's own (`ring`). Both
    /// backends must agree.
    fn verify(token: &str, key: &NewSigningKey) -> Result<Vec<u8>, Rejection> {
        let server = Verifier::from_public_jwk(&key.kid, key.alg, &key.public_jwk).unwrap();
        let crate_key = public(key);
        let select = |kid: &str| kid == key.kid;
        let with_server = tessera_verifier::jws::verify(token, ACCESS_TOKEN_TYP, |kid| {
            select(kid).then_some(&server)
        });
        let with_crate = tessera_verifier::jws::verify(token, ACCESS_TOKEN_TYP, |kid| {
            select(kid).then_some(&crate_key)
        });
        assert_eq!(with_server, with_crate, "the two backends disagree");
        with_server
    }

    fn public(key: &NewSigningKey) -> PublicKey {
        PublicKey::from_jwk(&key.public_jwk).unwrap()
    }

    /// A signature verified once is remembered by its key only: the same bytes verify again,
    /// a tampered one never (neither before nor after a success), another key does not share
    /// the memory, and a full memory starts over instead of growing.
    #[test]
    fn a_verified_signature_is_remembered_by_its_key_only() {
        use tessera_verifier::jws::VerifyingKey;
        let master = master();
        let key = generate(SigningAlg::Es256, &master).unwrap();
        let other = generate(SigningAlg::Es256, &master).unwrap();
        let verifier = Verifier::from_public_jwk(&key.kid, key.alg, &key.public_jwk).unwrap();
        let stranger = Verifier::from_public_jwk(&other.kid, other.alg, &other.public_jwk).unwrap();
        let signer = Signer::open(&key.kid, key.alg, &key.private_key_ciphertext, &master).unwrap();
        let token = signer.sign(br#"{"sub":"x"}"#).unwrap();
        let (input, signature) = token.rsplit_once('.').unwrap();
        let signature =
            base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, signature)
                .unwrap();
        let mut tampered = signature.clone();
        tampered[10] ^= 1;

        assert!(!verifier.verifies(input.as_bytes(), &tampered));
        for _ in 0..3 {
            assert!(verifier.verifies(input.as_bytes(), &signature));
        }
        assert!(!verifier.verifies(input.as_bytes(), &tampered));
        assert!(!verifier.verifies(b"another input", &signature));
        assert!(!stranger.verifies(input.as_bytes(), &signature));
        assert_eq!(
            verifier.verified.0.lock().unwrap().len(),
            1,
            "only the success is kept"
        );

        for n in 0..VERIFIED_SIGNATURES_MAX + 10 {
            verifier
                .verified
                .insert(VerifiedSignatures::fingerprint(&n.to_be_bytes(), b"s"));
        }
        assert!(verifier.verified.0.lock().unwrap().len() <= VERIFIED_SIGNATURES_MAX);
        assert!(verifier.verifies(input.as_bytes(), &signature));
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

    /// Cross-test of the backends: what our signer (OpenSSL, josekit) makes with every
    /// algorithm verifies under tessera-verifier's rules with the crate's keys (`ring`) and with
    /// the server's, and what another key of the same algorithm signs under our kid, a tampered
    /// payload, or a token naming another alg, does not.
    #[test]
    fn every_algorithm_signs_and_verifies_in_the_verifier_crate() {
        let master = master();
        for alg in SigningAlg::ALL {
            let key = generate(alg, &master).unwrap();
            let published: Value = serde_json::from_str(&key.public_jwk).unwrap();
            assert_eq!(published["kid"], key.kid.as_str());
            assert_eq!(published["alg"], alg.as_str());
            assert_eq!(published["use"], "sig");
            for private_member in ["d", "p", "q", "dp", "dq", "qi"] {
                assert!(
                    published.get(private_member).is_none(),
                    "{alg}: {private_member} published"
                );
            }
            let ours = public(&key);
            assert_eq!(
                (ours.kid(), ours.alg().as_str()),
                (key.kid.as_str(), alg.as_str())
            );
            let signer = Signer::open(&key.kid, alg, &key.private_key_ciphertext, &master).unwrap();
            for n in 0..10 {
                let payload = format!(r#"{{"sub":"x","n":{n}}}"#);
                let token = signer.sign(payload.as_bytes()).unwrap();
                assert_eq!(verify(&token, &key).unwrap(), payload.as_bytes(), "{alg}");
            }

            // An attacker's key of the same algorithm, signing under our kid.
            let attacker = generate(alg, &master).unwrap();
            let private = master
                .unwrap_signing_key(&attacker.private_key_ciphertext, &attacker.kid)
                .unwrap();
            let private = Jwk::from_bytes(&private).unwrap();
            let attacker: Box<dyn JwsSigner> = match alg {
                SigningAlg::Es256 => Box::new(ES256.signer_from_jwk(&private).unwrap()),
                SigningAlg::EdDsa => Box::new(EdDSA.signer_from_jwk(&private).unwrap()),
                SigningAlg::Rs256 => Box::new(RS256.signer_from_jwk(&private).unwrap()),
                SigningAlg::Ps256 => Box::new(PS256.signer_from_jwk(&private).unwrap()),
            };
            let mut header = josekit::jws::JwsHeader::new();
            header.set_token_type("at+jwt");
            header.set_key_id(&key.kid);
            let forged =
                josekit::jws::serialize_compact(br#"{"sub":"x"}"#, &header, &*attacker).unwrap();
            assert_eq!(verify(&forged, &key), Err(Rejection::BadSignature), "{alg}");
            // Tampered claims under a real signature.
            let token = signer.sign(br#"{"sub":"x"}"#).unwrap();
            let mut parts: Vec<&str> = token.split('.').collect();
            let tampered = base64url(br#"{"sub":"admin"}"#);
            parts[1] = &tampered;
            assert_eq!(verify(&parts.join("."), &key), Err(Rejection::BadSignature));
            // Another alg named in the header, the signature left as it is.
            let other = if alg == SigningAlg::Rs256 {
                "PS256"
            } else {
                "RS256"
            };
            let header = json!({"alg": other, "typ": "at+jwt", "kid": key.kid});
            let header = base64url(header.to_string().as_bytes());
            let renamed = format!("{header}.{}", token.split_once('.').unwrap().1);
            assert_eq!(
                verify(&renamed, &key),
                Err(Rejection::WrongAlgorithm),
                "{alg}"
            );
        }
    }

    /// Our ES256 path (OpenSSL's ECDSA directly), josekit's and the verifier crate's agree.
    #[test]
    fn es256_interoperates_with_josekit() {
        let master = master();
        let key = generate(SigningAlg::Es256, &master).unwrap();
        let signer = Signer::open(&key.kid, key.alg, &key.private_key_ciphertext, &master).unwrap();
        let jwk = Jwk::from_bytes(key.public_jwk.as_bytes()).unwrap();
        let theirs = ES256.verifier_from_jwk(&jwk).unwrap();
        for n in 0..50 {
            let payload = format!(r#"{{"n":{n}}}"#);
            let token = signer.sign(payload.as_bytes()).unwrap();
            let (verified, _) = josekit::jws::deserialize_compact(&token, &theirs).unwrap();
            assert_eq!(verified, payload.as_bytes());
        }
        let plaintext = master
            .unwrap_signing_key(&key.private_key_ciphertext, &key.kid)
            .unwrap();
        let josekit_signer = ES256
            .signer_from_jwk(&Jwk::from_bytes(&plaintext).unwrap())
            .unwrap();
        let mut header = josekit::jws::JwsHeader::new();
        header.set_token_type("at+jwt");
        header.set_key_id(&key.kid);
        let token =
            josekit::jws::serialize_compact(br#"{"sub":"x"}"#, &header, &josekit_signer).unwrap();
        assert_eq!(verify(&token, &key).unwrap(), br#"{"sub":"x"}"#);
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

    /// A key the previous release wrapped directly under the master key still signs.
    #[test]
    fn a_key_wrapped_by_the_previous_release_still_opens() {
        let master = master();
        let key = generate(SigningAlg::Es256, &master).unwrap();
        let jwk = master
            .unwrap_signing_key(&key.private_key_ciphertext, &key.kid)
            .unwrap();
        let legacy = super::super::sealing::legacy_seal(&master, &jwk, key.kid.as_bytes());
        assert!(!key.private_key_ciphertext.starts_with(&legacy[..4]));
        let signer = Signer::open(&key.kid, key.alg, &legacy, &master).unwrap();
        let token = signer.sign(b"{}").unwrap();
        assert!(verify(&token, &key).is_ok());
        assert!(matches!(
            Signer::open(&key.kid, key.alg, &legacy, &MasterKey::generate()),
            Err(KeyError::Decrypt)
        ));
    }
}
