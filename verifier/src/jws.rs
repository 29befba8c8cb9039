//! Pinned JWS verification (RFC 7515 compact serialisation): the typed header parse, the
//! forbidden members, the algorithm taken from the key, and the signature through `ring`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::Deserialize;

use crate::Rejection;

/// The signature algorithms Tessera signs with (RFC 7518 §3, RFC 8037). There is no `none` and
/// no HMAC: a key is asymmetric or it is not a key here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    Es256,
    EdDsa,
    Rs256,
    Ps256,
}

impl Alg {
    pub const ALL: [Alg; 4] = [Alg::Es256, Alg::EdDsa, Alg::Rs256, Alg::Ps256];

    pub fn as_str(self) -> &'static str {
        match self {
            Alg::Es256 => "ES256",
            Alg::EdDsa => "EdDSA",
            Alg::Rs256 => "RS256",
            Alg::Ps256 => "PS256",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Alg::ALL.into_iter().find(|alg| alg.as_str() == name)
    }
}

impl std::fmt::Display for Alg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a JWK was not taken as a verification key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the JWK is not a JSON object with the members its kty needs")]
    Malformed,
    #[error("the JWK names no alg, or one this crate does not verify")]
    UnsupportedAlg,
    #[error("the JWK's kty or crv does not fit its alg")]
    WrongKeyType,
    #[error("the JWK is not meant for signatures (use or key_ops)")]
    NotForSignatures,
}

/// A key that verifies signatures under one algorithm, fixed by the key, never by a token.
/// [`PublicKey`] is this crate's (`ring`); a caller with another backend (Tessera's server keeps
/// OpenSSL for ES256) implements it and gets the same rules.
pub trait VerifyingKey {
    fn alg(&self) -> Alg;
    /// Whether `signature` is this key's signature of `signing_input` under [`Self::alg`].
    fn verifies(&self, signing_input: &[u8], signature: &[u8]) -> bool;
}

/// A published public key that verifies; its algorithm is fixed by the key, never by a token.
pub struct PublicKey {
    kid: String,
    alg: Alg,
    inner: Inner,
}

enum Inner {
    /// Uncompressed SEC1 point (0x04 || x || y), checked to lie on P-256 by `ring` on use.
    Ec(Vec<u8>),
    Ed(Vec<u8>),
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// The JWK members a public key is read from (RFC 7517 §4, RFC 7518 §6).
#[derive(Deserialize)]
struct Jwk<'a> {
    kty: Option<&'a str>,
    #[serde(default)]
    kid: Option<String>,
    alg: Option<&'a str>,
    #[serde(rename = "use")]
    use_: Option<&'a str>,
    key_ops: Option<Vec<&'a str>>,
    crv: Option<&'a str>,
    x: Option<&'a str>,
    y: Option<&'a str>,
    n: Option<&'a str>,
    e: Option<&'a str>,
}

impl PublicKey {
    /// Reads a public JWK. Its `alg` is required and pins the key: a JWK without one could be
    /// used with more than one algorithm (RS256 and PS256 share a key type), so it is refused.
    /// `kid` is taken from the JWK (empty if it has none).
    pub fn from_jwk(jwk: &str) -> Result<Self, KeyError> {
        let value: serde_json::Value =
            serde_json::from_str(jwk).map_err(|_| KeyError::Malformed)?;
        Self::from_jwk_value(&value)
    }

    /// As [`Self::from_jwk`], from an already parsed JSON value (one member of a JWKS).
    pub fn from_jwk_value(value: &serde_json::Value) -> Result<Self, KeyError> {
        let jwk = Jwk::deserialize(value).map_err(|_| KeyError::Malformed)?;
        let alg = jwk
            .alg
            .and_then(Alg::parse)
            .ok_or(KeyError::UnsupportedAlg)?;
        if jwk.use_.is_some_and(|u| u != "sig")
            || jwk
                .key_ops
                .as_ref()
                .is_some_and(|ops| !ops.contains(&"verify"))
        {
            return Err(KeyError::NotForSignatures);
        }
        let member = |value: Option<&str>| {
            value
                .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
                .ok_or(KeyError::Malformed)
        };
        let inner = match (alg, jwk.kty, jwk.crv) {
            (Alg::Es256, Some("EC"), Some("P-256")) => {
                let (x, y) = (member(jwk.x)?, member(jwk.y)?);
                if x.len() != 32 || y.len() != 32 {
                    return Err(KeyError::Malformed);
                }
                Inner::Ec([&[4u8][..], &x, &y].concat())
            }
            (Alg::EdDsa, Some("OKP"), Some("Ed25519")) => {
                let x = member(jwk.x)?;
                if x.len() != 32 {
                    return Err(KeyError::Malformed);
                }
                Inner::Ed(x)
            }
            (Alg::Rs256 | Alg::Ps256, Some("RSA"), None) => Inner::Rsa {
                n: member(jwk.n)?,
                e: member(jwk.e)?,
            },
            _ => return Err(KeyError::WrongKeyType),
        };
        Ok(Self {
            kid: jwk.kid.unwrap_or_default(),
            alg,
            inner,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn alg(&self) -> Alg {
        self.alg
    }
}

impl VerifyingKey for PublicKey {
    fn alg(&self) -> Alg {
        self.alg
    }

    /// RSA keys must have 2048 to 8192 bits.
    fn verifies(&self, signing_input: &[u8], signature: &[u8]) -> bool {
        match (&self.inner, self.alg) {
            (Inner::Ec(point), _) => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(signing_input, signature)
                    .is_ok()
            }
            (Inner::Ed(x), _) => UnparsedPublicKey::new(&signature::ED25519, x)
                .verify(signing_input, signature)
                .is_ok(),
            (Inner::Rsa { n, e }, alg) => {
                let params = if alg == Alg::Ps256 {
                    &signature::RSA_PSS_2048_8192_SHA256
                } else {
                    &signature::RSA_PKCS1_2048_8192_SHA256
                };
                RsaPublicKeyComponents { n, e }
                    .verify(params, signing_input, signature)
                    .is_ok()
            }
        }
    }
}

/// A compact JWS split and its header checked, before any key is looked up.
struct Parsed<'t> {
    kid: String,
    alg: Option<String>,
    signing_input: &'t [u8],
    payload: &'t str,
    signature: &'t str,
}

/// The JWS header members verification reads (RFC 7515 §4.1); any other member is ignored,
/// except those that name a key elsewhere or extend the format, which are refused.
#[derive(Deserialize)]
struct Header {
    alg: Option<String>,
    kid: Option<String>,
    typ: Option<String>,
    #[serde(default, deserialize_with = "present")]
    jku: bool,
    #[serde(default, deserialize_with = "present")]
    x5u: bool,
    #[serde(default, deserialize_with = "present")]
    jwk: bool,
    #[serde(default, deserialize_with = "present")]
    x5c: bool,
    #[serde(default, deserialize_with = "present")]
    x5t: bool,
    #[serde(default, rename = "x5t#S256", deserialize_with = "present")]
    x5t_s256: bool,
    #[serde(default, deserialize_with = "present")]
    crit: bool,
}

impl Header {
    fn names_a_key_elsewhere(&self) -> bool {
        self.jku || self.x5u || self.jwk || self.x5c || self.x5t || self.x5t_s256 || self.crit
    }
}

/// A member that is there at all, whatever its value (`null` included), counts as present.
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(deserializer).map(|_| true)
}

fn parse<'t>(token: &'t str, typ: &[&str]) -> Result<Parsed<'t>, Rejection> {
    let mut parts = token.split('.');
    let (Some(encoded_header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Rejection::Malformed);
    };
    let header_json = URL_SAFE_NO_PAD
        .decode(encoded_header)
        .map_err(|_| Rejection::Malformed)?;
    // An object, not an array a struct would also accept; a repeated member is refused.
    if header_json.trim_ascii_start().first() != Some(&b'{') {
        return Err(Rejection::Malformed);
    }
    let header: Header = serde_json::from_slice(&header_json).map_err(|_| Rejection::Malformed)?;
    if header.names_a_key_elsewhere() {
        return Err(Rejection::ForbiddenHeader);
    }
    let kid = header.kid.ok_or(Rejection::UnknownKey)?;
    let found = header.typ.as_deref().unwrap_or_default();
    if !typ.iter().any(|t| found.eq_ignore_ascii_case(t)) {
        return Err(Rejection::WrongType);
    }
    Ok(Parsed {
        kid,
        alg: header.alg,
        signing_input: &token.as_bytes()[..encoded_header.len() + 1 + payload.len()],
        payload,
        signature,
    })
}

/// RFC 9068 §4: `at+jwt` or its full media type, compared case-insensitively.
pub const ACCESS_TOKEN_TYP: &[&str] = &["at+jwt", "application/at+jwt"];

/// Token Status List §5.1: the list token's type.
pub const STATUS_LIST_TYP: &[&str] = &["statuslist+jwt", "application/statuslist+jwt"];

/// Verifies a compact JWS of one of the types `typ` with the key `select` returns for its `kid`,
/// and returns the decoded payload. The key decides the algorithm (the header's `alg` must
/// equal it), and `jku`, `x5u`, `jwk`, `x5c`, `x5t`, `x5t#S256` and `crit` are refused outright,
/// never followed (RFC 8725 §3.1, §3.10). Checks run in this order: shape, forbidden members,
/// `kid` present, `typ`, key known, `alg`, signature.
pub fn verify<'k, K: VerifyingKey + 'k>(
    token: &str,
    typ: &[&str],
    select: impl FnOnce(&str) -> Option<&'k K>,
) -> Result<Vec<u8>, Rejection> {
    let parsed = parse(token, typ)?;
    let key = select(&parsed.kid).ok_or(Rejection::UnknownKey)?;
    verify_parsed(&parsed, key)
}

/// The `kid` a token's header names, once its header has passed the checks of [`verify`];
/// for a caller that must fetch keys before it can select one.
pub fn kid_of(token: &str, typ: &[&str]) -> Result<String, Rejection> {
    parse(token, typ).map(|parsed| parsed.kid)
}

fn verify_parsed(parsed: &Parsed<'_>, key: &impl VerifyingKey) -> Result<Vec<u8>, Rejection> {
    // The key fixes the algorithm; a token naming another (none, HS256, …) is simply wrong.
    if parsed.alg.as_deref() != Some(key.alg().as_str()) {
        return Err(Rejection::WrongAlgorithm);
    }
    let signature = URL_SAFE_NO_PAD
        .decode(parsed.signature)
        .map_err(|_| Rejection::BadSignature)?;
    if !key.verifies(parsed.signing_input, &signature) {
        return Err(Rejection::BadSignature);
    }
    URL_SAFE_NO_PAD
        .decode(parsed.payload)
        .map_err(|_| Rejection::Malformed)
}

#[cfg(test)]
pub(crate) mod tests {
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
    use serde_json::{Value, json};

    use super::*;

    pub(crate) fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// An ES256 or EdDSA key pair made with `ring`, with its public JWK.
    pub(crate) struct TestKey {
        pub kid: String,
        pub alg: Alg,
        ec: Option<EcdsaKeyPair>,
        ed: Option<Ed25519KeyPair>,
    }

    impl TestKey {
        pub(crate) fn new(alg: Alg, kid: &str) -> Self {
            let rng = SystemRandom::new();
            let (ec, ed) = match alg {
                Alg::Es256 => {
                    let pkcs8 =
                        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                            .unwrap();
                    let pair = EcdsaKeyPair::from_pkcs8(
                        &ECDSA_P256_SHA256_FIXED_SIGNING,
                        pkcs8.as_ref(),
                        &rng,
                    )
                    .unwrap();
                    (Some(pair), None)
                }
                Alg::EdDsa => {
                    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
                    (
                        None,
                        Some(Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()),
                    )
                }
                _ => unimplemented!("RSA keys are cross-tested with the server's signer"),
            };
            Self {
                kid: kid.to_owned(),
                alg,
                ec,
                ed,
            }
        }

        pub(crate) fn jwk(&self) -> Value {
            match (&self.ec, &self.ed) {
                (Some(ec), _) => {
                    let point = ec.public_key().as_ref();
                    json!({"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig",
                        "kid": self.kid, "x": b64(&point[1..33]), "y": b64(&point[33..])})
                }
                (_, Some(ed)) => json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA",
                    "kid": self.kid, "x": b64(ed.public_key().as_ref())}),
                _ => unreachable!(),
            }
        }

        pub(crate) fn public(&self) -> PublicKey {
            PublicKey::from_jwk(&self.jwk().to_string()).unwrap()
        }

        pub(crate) fn sign_raw(&self, input: &[u8]) -> Vec<u8> {
            match (&self.ec, &self.ed) {
                (Some(ec), _) => ec
                    .sign(&SystemRandom::new(), input)
                    .unwrap()
                    .as_ref()
                    .to_vec(),
                (_, Some(ed)) => ed.sign(input).as_ref().to_vec(),
                _ => unreachable!(),
            }
        }

        /// A compact JWS of `payload` under `header`.
        pub(crate) fn sign_with(&self, header: &Value, payload: &Value) -> String {
            let input = format!(
                "{}.{}",
                b64(header.to_string().as_bytes()),
                b64(payload.to_string().as_bytes())
            );
            let signature = b64(&self.sign_raw(input.as_bytes()));
            format!("{input}.{signature}")
        }

        pub(crate) fn sign(&self, payload: &Value) -> String {
            let header = json!({"alg": self.alg.as_str(), "typ": "at+jwt", "kid": self.kid});
            self.sign_with(&header, payload)
        }
    }

    fn run(token: &str, key: &PublicKey) -> Result<Vec<u8>, Rejection> {
        verify(token, ACCESS_TOKEN_TYP, |kid| {
            (kid == key.kid()).then_some(key)
        })
    }

    #[test]
    fn every_ring_algorithm_verifies_with_its_own_key_only() {
        for alg in [Alg::Es256, Alg::EdDsa] {
            let key = TestKey::new(alg, "k1");
            let token = key.sign(&json!({"sub": "x"}));
            assert_eq!(run(&token, &key.public()).unwrap(), br#"{"sub":"x"}"#);
            let attacker = TestKey::new(alg, "k1");
            let forged = attacker.sign(&json!({"sub": "x"}));
            assert_eq!(
                run(&forged, &key.public()),
                Err(Rejection::BadSignature),
                "{alg}"
            );
        }
    }

    #[test]
    fn verification_is_pinned_to_the_key() {
        let key = TestKey::new(Alg::Es256, "k1");
        let public = key.public();
        let good = key.sign(&json!({}));
        assert!(run(&good, &public).is_ok());
        let payload = good.split('.').nth(1).unwrap();
        let real_sig = good.split('.').nth(2).unwrap();
        let forge = |header: Value, sig: &str| {
            format!("{}.{payload}.{sig}", b64(header.to_string().as_bytes()))
        };
        // alg none, HS256 keyed with the public key, and a different asymmetric alg.
        for alg in ["none", "HS256", "RS256", "EdDSA"] {
            let token = forge(json!({"alg": alg, "typ": "at+jwt", "kid": "k1"}), real_sig);
            assert_eq!(
                run(&token, &public),
                Err(Rejection::WrongAlgorithm),
                "{alg}"
            );
        }
        let token = forge(json!({"typ": "at+jwt", "kid": "k1"}), real_sig);
        assert_eq!(run(&token, &public), Err(Rejection::WrongAlgorithm));
        // HS256 with the public key's JWK as the HMAC secret, correctly computed.
        let header = json!({"alg": "HS256", "typ": "at+jwt", "kid": "k1"});
        let input = format!("{}.{payload}", b64(header.to_string().as_bytes()));
        let mac_key =
            ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.jwk().to_string().as_bytes());
        let mac = b64(ring::hmac::sign(&mac_key, input.as_bytes()).as_ref());
        assert_eq!(
            run(&format!("{input}.{mac}"), &public),
            Err(Rejection::WrongAlgorithm)
        );
        let token = forge(
            json!({"alg": "ES256", "typ": "at+jwt", "kid": "someone-else"}),
            real_sig,
        );
        assert_eq!(run(&token, &public), Err(Rejection::UnknownKey));
        let token = forge(json!({"alg": "ES256", "typ": "at+jwt"}), real_sig);
        assert_eq!(run(&token, &public), Err(Rejection::UnknownKey));
        for header in ["jku", "x5u", "jwk", "x5c", "x5t", "x5t#S256", "crit"] {
            let token = forge(
                json!({"alg": "ES256", "typ": "at+jwt", "kid": "k1", header: "https://evil.example"}),
                real_sig,
            );
            assert_eq!(
                run(&token, &public),
                Err(Rejection::ForbiddenHeader),
                "{header}"
            );
        }
        // Present with any value, null included, is refused.
        let token = forge(
            json!({"alg": "ES256", "typ": "at+jwt", "kid": "k1", "jku": null}),
            real_sig,
        );
        assert_eq!(run(&token, &public), Err(Rejection::ForbiddenHeader));
        for typ in ["JWT", "", "id_token+jwt", "statuslist+jwt"] {
            let token = forge(json!({"alg": "ES256", "typ": typ, "kid": "k1"}), real_sig);
            assert_eq!(run(&token, &public), Err(Rejection::WrongType), "{typ}");
        }
        for typ in ["AT+JWT", "application/at+jwt"] {
            let header = json!({"alg": "ES256", "typ": typ, "kid": "k1"});
            assert!(
                run(&key.sign_with(&header, &json!({})), &public).is_ok(),
                "{typ}"
            );
        }
        // A header that is an array, or repeats a member, is not a JWS header.
        let token = forge(json!(["ES256", "k1", "at+jwt"]), real_sig);
        assert_eq!(run(&token, &public), Err(Rejection::Malformed));
        let repeated = r#"{"alg":"ES256","typ":"at+jwt","kid":"k1","kid":"k1"}"#;
        let token = format!("{}.{payload}.{real_sig}", b64(repeated.as_bytes()));
        assert_eq!(run(&token, &public), Err(Rejection::Malformed));
        // A truncated or padded signature, and one over another payload.
        let header = good.split('.').next().unwrap();
        for sig in [
            &real_sig[..real_sig.len() - 4],
            &format!("{real_sig}AAAA"),
            "",
            "!!",
        ] {
            let token = format!("{header}.{payload}.{sig}");
            assert_eq!(run(&token, &public), Err(Rejection::BadSignature));
        }
        let other = key.sign(&json!({"sub": "y"}));
        let tampered = format!("{header}.{}.{real_sig}", other.split('.').nth(1).unwrap());
        assert_eq!(run(&tampered, &public), Err(Rejection::BadSignature));
        for bad in ["a.b.c.d", "a.b", "!!!.b.c", ""] {
            assert_eq!(run(bad, &public), Err(Rejection::Malformed), "{bad}");
        }
    }

    #[test]
    fn a_jwk_is_pinned_to_its_alg_and_type() {
        let jwk = TestKey::new(Alg::Es256, "k1").jwk();
        let with = |name: &str, value: Value| {
            let mut jwk = jwk.clone();
            jwk[name] = value;
            PublicKey::from_jwk(&jwk.to_string()).map(|k| k.alg())
        };
        assert_eq!(with("alg", json!("ES256")), Ok(Alg::Es256));
        assert_eq!(with("alg", Value::Null), Err(KeyError::UnsupportedAlg));
        assert_eq!(with("alg", json!("HS256")), Err(KeyError::UnsupportedAlg));
        assert_eq!(with("alg", json!("none")), Err(KeyError::UnsupportedAlg));
        assert_eq!(with("alg", json!("RS256")), Err(KeyError::WrongKeyType));
        assert_eq!(with("crv", json!("P-384")), Err(KeyError::WrongKeyType));
        assert_eq!(with("use", json!("enc")), Err(KeyError::NotForSignatures));
        assert_eq!(
            with("key_ops", json!(["encrypt"])),
            Err(KeyError::NotForSignatures)
        );
        assert_eq!(with("x", json!("AAAA")), Err(KeyError::Malformed));
        assert_eq!(with("kty", json!("oct")), Err(KeyError::WrongKeyType));
        assert_eq!(
            PublicKey::from_jwk("[]").map(|k| k.alg()),
            Err(KeyError::Malformed)
        );
        // A point off the curve parses but never verifies.
        let mut off = jwk.clone();
        off["y"] = json!(b64(&[1u8; 32]));
        let key = PublicKey::from_jwk(&off.to_string()).unwrap();
        let token = TestKey::new(Alg::Es256, "k1").sign(&json!({}));
        assert_eq!(run(&token, &key), Err(Rejection::BadSignature));
    }
}
