//! The claim checks of an access token (RFC 9068 §4, RFC 7519 §4.1): issuer, audience and
//! lifetime with a bounded leeway.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::Rejection;
use crate::jws::{self, ACCESS_TOKEN_TYP, VerifyingKey};

/// The largest leeway [`Rules::leeway`] accepts: a wider one would keep a revoked signing key's
/// forgeries or a clock far off unnoticed.
pub const MAX_LEEWAY: Duration = Duration::from_secs(300);

/// The default tolerated clock difference between the issuer and the verifier.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);

/// What a token must say about itself to be accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    issuer: String,
    audience: Option<String>,
    leeway: Duration,
}

impl Rules {
    /// Tokens of `issuer` (compared exactly) for any audience, with the default leeway.
    /// A resource server names its audience with [`Self::audience`].
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: None,
            leeway: DEFAULT_LEEWAY,
        }
    }

    /// Only tokens whose `aud` is, or contains, `audience`.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// How far in the future `iat` and `nbf` may be (clock difference); at most [`MAX_LEEWAY`],
    /// a larger value is lowered to it. `exp` gets no leeway: a token is never accepted after
    /// its issuer said it ends.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway.min(MAX_LEEWAY);
        self
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn expected_audience(&self) -> Option<&str> {
        self.audience.as_deref()
    }

    pub fn current_leeway(&self) -> Duration {
        self.leeway
    }

    /// Checks the registered claims of a verified payload at unix time `now`, then reads the
    /// whole payload as `C`.
    pub fn check<C: DeserializeOwned>(&self, payload: &[u8], now: i64) -> Result<C, Rejection> {
        let registered: Registered =
            serde_json::from_slice(payload).map_err(|_| Rejection::MalformedClaims)?;
        if registered.iss != self.issuer {
            return Err(Rejection::WrongIssuer);
        }
        if let Some(expected) = &self.audience
            && !registered.aud.contains(expected)
        {
            return Err(Rejection::WrongAudience);
        }
        if now >= registered.exp {
            return Err(Rejection::Expired);
        }
        let leeway = self.leeway.as_secs() as i64;
        if registered.nbf.is_some_and(|nbf| nbf > now + leeway) || registered.iat > now + leeway {
            return Err(Rejection::NotYetValid);
        }
        serde_json::from_slice(payload).map_err(|_| Rejection::MalformedClaims)
    }

    /// Verifies an access token with the key `select` returns for its `kid` (see
    /// [`jws::verify`]) and checks its claims at unix time `now`.
    pub fn verify<'k, C: DeserializeOwned, K: VerifyingKey + 'k>(
        &self,
        token: &str,
        select: impl FnOnce(&str) -> Option<&'k K>,
        now: i64,
    ) -> Result<C, Rejection> {
        let payload = jws::verify(token, ACCESS_TOKEN_TYP, select)?;
        self.check(&payload, now)
    }
}

/// The registered claims every access token must carry (RFC 9068 §2.2).
#[derive(Deserialize)]
struct Registered {
    iss: String,
    aud: Audience,
    exp: i64,
    iat: i64,
    nbf: Option<i64>,
}

/// `aud`: one audience or several (RFC 7519 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub fn contains(&self, audience: &str) -> bool {
        match self {
            Audience::One(one) => one == audience,
            Audience::Many(many) => many.iter().any(|a| a == audience),
        }
    }
}

/// The claims of a Tessera access token, as a resource server reads them. Members this struct
/// does not name are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: Audience,
    pub exp: i64,
    pub iat: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub jti: String,
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// RFC 9068 §2.2.3.1: the roles that granted a user's token its scopes (Tessera's roles).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    /// Where the token's revocation status is published (Token Status List).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<crate::status::StatusClaim>,
}

impl Claims {
    /// The scopes of the token (space-separated `scope`, RFC 9068 §2.2.3).
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope
            .as_deref()
            .unwrap_or_default()
            .split_ascii_whitespace()
    }

    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|s| s == scope)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::jws::Alg;
    use crate::jws::tests::TestKey;

    const NOW: i64 = 1_700_000_000;

    fn claims(overrides: serde_json::Value) -> serde_json::Value {
        let mut claims = json!({"iss": "https://issuer.example", "sub": "alice", "aud": "api",
            "exp": NOW + 300, "iat": NOW, "jti": "j1", "client_id": "c1", "scope": "read write"});
        for (name, value) in overrides.as_object().unwrap() {
            claims[name] = value.clone();
        }
        claims
    }

    fn check(key: &TestKey, token: &str, rules: &Rules, now: i64) -> Result<Claims, Rejection> {
        let public = key.public();
        rules.verify(token, |kid| (kid == public.kid()).then_some(&public), now)
    }

    #[test]
    fn every_claim_is_checked() {
        let key = TestKey::new(Alg::Es256, "k1");
        let rules = Rules::new("https://issuer.example").audience("api");
        let good = key.sign(&claims(json!({})));
        let verified = check(&key, &good, &rules, NOW).unwrap();
        assert_eq!(verified.sub, "alice");
        assert!(verified.has_scope("write") && !verified.has_scope("admin"));
        let cases = [
            (
                json!({"iss": "https://elsewhere.example"}),
                Rejection::WrongIssuer,
            ),
            (json!({"aud": "other"}), Rejection::WrongAudience),
            (json!({"aud": ["other", "more"]}), Rejection::WrongAudience),
            (json!({"exp": NOW}), Rejection::Expired),
            (json!({"iat": NOW + 61}), Rejection::NotYetValid),
            (json!({"nbf": NOW + 61}), Rejection::NotYetValid),
            (json!({"exp": "soon"}), Rejection::MalformedClaims),
            (json!({"iss": null}), Rejection::MalformedClaims),
            (json!({"exp": 1.5e9}), Rejection::MalformedClaims),
        ];
        for (overrides, rejection) in cases {
            let token = key.sign(&claims(overrides.clone()));
            assert_eq!(
                check(&key, &token, &rules, NOW),
                Err(rejection),
                "{overrides}"
            );
        }
        let within = [
            json!({"aud": ["other", "api"]}),
            json!({"iat": NOW + 60}),
            json!({"nbf": NOW + 60}),
        ];
        for overrides in within {
            let token = key.sign(&claims(overrides.clone()));
            assert!(check(&key, &token, &rules, NOW).is_ok(), "{overrides}");
        }
        // The last second before exp is valid, exp itself is not: no leeway after the end.
        assert!(check(&key, &good, &rules, NOW + 299).is_ok());
        assert_eq!(
            check(&key, &good, &rules, NOW + 300),
            Err(Rejection::Expired)
        );
        // Without an expected audience any aud is accepted (the issuer's own introspection).
        let any = Rules::new("https://issuer.example");
        assert!(check(&key, &key.sign(&claims(json!({"aud": "other"}))), &any, NOW).is_ok());
    }

    #[test]
    fn the_leeway_is_bounded() {
        let rules = Rules::new("i").leeway(Duration::from_secs(86_400));
        assert_eq!(rules.current_leeway(), MAX_LEEWAY);
        let key = TestKey::new(Alg::Es256, "k1");
        let token = key.sign(&claims(json!({"iss": "i", "iat": NOW + 301})));
        assert_eq!(
            check(&key, &token, &rules, NOW),
            Err(Rejection::NotYetValid)
        );
        let zero = Rules::new("i").leeway(Duration::ZERO);
        let token = key.sign(&claims(json!({"iss": "i", "iat": NOW + 1})));
        assert_eq!(check(&key, &token, &zero, NOW), Err(Rejection::NotYetValid));
    }
}
