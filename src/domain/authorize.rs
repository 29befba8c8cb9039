//! Browser sign-in's authorization code grant (RFC 6749 §4.1, RFC 7636, RFC 9700 §2.1, §4.5): the client and redirect URI check of /authorize, the scope a user may approve, codes, and their exchange with reuse detection. Uses: store, crypto, clock, model.

use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use time::OffsetDateTime;

use super::token::{Target, TokenResponse, audience, granted_scope, user_scope};
use super::{Error, Issuer};
use crate::crypto::random_bytes;
use crate::crypto::secrets::sha256;
use crate::model::{AuditEvent, AuthorizationCode, Client, GrantType};
use crate::store::CodeRedeemed;

/// The prefix that lets secret scanners spot a leaked authorization code.
pub const AUTHORIZATION_CODE_PREFIX: &str = "tsc_";

/// What /authorize hands to [`Issuer::issue_code`] once the user has approved.
#[derive(Debug, Clone)]
pub struct CodeGrant {
    pub client_id: String,
    /// The redirect URI of the request, exactly as sent (it must be sent again at /token).
    pub redirect_uri: String,
    /// BASE64URL(SHA256(code_verifier)) (RFC 7636 §4.2); see [`is_code_challenge`].
    pub code_challenge: String,
    /// What the user approved (from [`Issuer::approvable_scope`]).
    pub scope: String,
    pub user_id: uuid::Uuid,
    /// The browser session the approval came through, if any.
    pub browser_session_id: Option<uuid::Uuid>,
}

/// What came with `grant_type=authorization_code` (RFC 6749 §4.1.3, RFC 7636 §4.5).
#[derive(Clone, Copy)]
pub struct CodeExchange<'a> {
    pub code: &'a str,
    pub redirect_uri: &'a str,
    pub code_verifier: &'a str,
    pub target: Target<'a>,
    pub source_addr: Option<IpAddr>,
}

/// RFC 7636 §4.1: code-verifier = 43*128unreserved.
pub fn is_code_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len()) && verifier.bytes().all(is_unreserved)
}

/// An S256 challenge is BASE64URL of a SHA-256 digest, without padding: 43 characters.
pub fn is_code_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~".contains(&b)
}

/// RFC 7636 §4.6 with S256, the only method: BASE64URL(SHA256(verifier)) == challenge,
/// compared in time independent of where they differ.
pub fn pkce_s256_matches(verifier: &str, challenge: &str) -> bool {
    let computed = URL_SAFE_NO_PAD.encode(sha256(verifier.as_bytes()));
    computed.len() == challenge.len()
        && openssl::memcmp::eq(computed.as_bytes(), challenge.as_bytes())
}

/// The digest a presented code is looked up by; `None` when it cannot be one of ours.
fn code_digest(code: &str) -> Option<[u8; 32]> {
    let encoded = code.strip_prefix(AUTHORIZATION_CODE_PREFIX)?;
    (encoded.len() == 43 && encoded.bytes().all(is_unreserved)).then(|| sha256(code.as_bytes()))
}

/// The scope a code's exchange may carry (CONTRACT: scope = what the user approved ∩ what the
/// user holds now ∩ the client's scopes), in the approval's order.
fn exchange_scope(approved: &str, client: &Client, held: &crate::model::HeldRoles) -> String {
    let allowed: Vec<&str> = approved
        .split(' ')
        .filter(|s| !s.is_empty() && client.scopes.iter().any(|c| c == s))
        .collect();
    held.retain(&allowed.join(" "))
}

impl Issuer {
    /// /authorize's first check (RFC 6749 §4.1.2.1, RFC 9700 §4.1): a known, enabled client
    /// allowed the code grant, and a redirect URI registered for it. An error here must be
    /// shown to the user, never sent to the redirect URI (no open redirector).
    pub async fn authorization_client(
        &self,
        client_id: &str,
        redirect_uri: &str,
    ) -> Result<Arc<Client>, Error> {
        let client = self
            .clients
            .get(client_id)
            .filter(|c| !c.disabled)
            .ok_or(Error::InvalidClient)?;
        if !client.redirect_uri_matches(redirect_uri) {
            return Err(Error::invalid_request(
                "redirect_uri: not registered for this client",
            ));
        }
        if !client.allows(GrantType::AuthorizationCode) {
            return Err(Error::UnauthorizedClient);
        }
        Ok(client)
    }

    /// The scope a user may approve: the request's (or, without one, every scope of the
    /// client), which must be the client's (RFC 6749 §3.3), narrowed to what the user holds.
    /// Asking for a scope the user does not hold, or holding none of the client's, is
    /// `invalid_scope`, as for the password grant.
    pub async fn approvable_scope(
        &self,
        client: &Client,
        user_id: uuid::Uuid,
        requested: Option<&str>,
    ) -> Result<String, Error> {
        let granted = granted_scope(client, requested)?;
        let held = self.store.held_roles(user_id).await?;
        user_scope(client, &granted, requested.is_some(), &held)
    }

    /// A new authorization code for an approved request: `tsc_` + 256 random bits, stored
    /// only as its SHA-256, valid `TESSERA_AUTHORIZATION_CODE_TTL`. The code is returned once.
    #[tracing::instrument(skip_all, fields(client_id = %grant.client_id))]
    pub async fn issue_code(&self, grant: CodeGrant) -> Result<String, Error> {
        if !is_code_challenge(&grant.code_challenge) {
            return Err(Error::invalid_request(
                "code_challenge: BASE64URL(SHA256(code_verifier)), 43 characters",
            ));
        }
        let code = format!(
            "{AUTHORIZATION_CODE_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(random_bytes::<32>())
        );
        let now = self.clock.now();
        let record = AuthorizationCode {
            code_digest: sha256(code.as_bytes()),
            client_id: grant.client_id,
            user_id: grant.user_id,
            browser_session_id: grant.browser_session_id,
            redirect_uri: grant.redirect_uri,
            code_challenge: grant.code_challenge,
            scope: grant.scope,
            created_at: now,
            expires_at: now + self.policy.authorization_code_ttl,
            used_at: None,
            session_id: None,
        };
        self.store.add_authorization_code(&record).await?;
        tracing::info!(user_id = %record.user_id, "authorization code issued");
        Ok(code)
    }

    /// RFC 6749 §4.1.3 with PKCE (RFC 7636 §4.6). The checks come in this order, and only a
    /// request that passes the first three can change anything (OAuth 2.1 §7.5.2: otherwise
    /// anyone holding a stolen code could log the real user out):
    /// 1. the code is ours and was issued to this (authenticated) client;
    /// 2. the redirect URI is the one it was issued for;
    /// 3. the verifier matches its S256 challenge (a wrong one leaves the code usable);
    /// 4. used already: reuse, which revokes the session its exchange made;
    /// 5. expired: `invalid_grant`.
    ///
    /// Then the code is consumed in the transaction that stores the new session. The scope is
    /// what was approved ∩ what the user holds now ∩ the client's scopes.
    pub async fn authorization_code(
        &self,
        client: &Client,
        exchange: CodeExchange<'_>,
    ) -> Result<TokenResponse, Error> {
        if !client.allows(GrantType::AuthorizationCode) {
            return Err(Error::UnauthorizedClient);
        }
        let audience = audience(client, exchange.target)?;
        let digest = code_digest(exchange.code).ok_or(Error::InvalidGrant)?;
        let record = self
            .store
            .find_authorization_code(&digest)
            .await?
            .ok_or(Error::InvalidGrant)?;
        if !self.code_presented_rightly(client, &record, &exchange) {
            return Err(Error::InvalidGrant);
        }
        let source = exchange.source_addr.map(|ip| ip.to_string());
        if record.used_at.is_some() {
            return Err(self.code_reused(client, &record, source.as_deref()).await);
        }
        // Before the roles are read: see `Minting`.
        let issued_at = self.clock.now();
        if record.expires_at <= issued_at {
            tracing::info!("authorization code expired");
            return Err(Error::InvalidGrant);
        }
        let held = self.store.held_roles(record.user_id).await?;
        let scope = exchange_scope(&record.scope, client, &held);
        if scope.is_empty() && !record.scope.is_empty() {
            // The user lost every approved scope meanwhile: nothing left to grant.
            return Err(Error::InvalidGrant);
        }
        let login = self
            .start_login(client, record.user_id, scope, &held, issued_at)
            .await?;
        let first = login.first.as_ref().map(|(_, record)| record);
        let now = self.clock.now();
        match self
            .store
            .redeem_authorization_code(&digest, &login.session, first, now)
            .await?
        {
            CodeRedeemed::Redeemed => {
                self.finish_login(
                    GrantType::AuthorizationCode,
                    client,
                    login,
                    audience,
                    source.as_deref(),
                )
                .await
            }
            CodeRedeemed::UserDisabled => Err(Error::InvalidGrant),
            CodeRedeemed::NotLive => {
                // Another exchange of this code won the race (or it expired meanwhile). It
                // passed every check above, so it is a second exchange like any other: reuse.
                match self.store.find_authorization_code(&digest).await? {
                    Some(used) if used.used_at.is_some() => {
                        Err(self.code_reused(client, &used, source.as_deref()).await)
                    }
                    _ => Err(Error::InvalidGrant),
                }
            }
        }
    }

    /// Checks 1 to 3 of [`Issuer::authorization_code`]; a failure changes nothing.
    fn code_presented_rightly(
        &self,
        client: &Client,
        record: &AuthorizationCode,
        exchange: &CodeExchange<'_>,
    ) -> bool {
        if record.client_id != client.client_id {
            tracing::info!("authorization code of another client");
            return false;
        }
        if record.redirect_uri != exchange.redirect_uri {
            tracing::info!("authorization code with another redirect_uri");
            return false;
        }
        // Every code here has a challenge (`issue_code` requires one), so a verifier is always
        // checked, and one for a code without a challenge could never pass (RFC 9700 §4.8.2).
        if !is_code_verifier(exchange.code_verifier)
            || !pkce_s256_matches(exchange.code_verifier, &record.code_challenge)
        {
            tracing::info!("authorization code with a wrong code_verifier");
            return false;
        }
        true
    }

    /// RFC 6749 §10.5, OAuth 2.1 §4.1.3: a used code presented again, by its own client with
    /// the right redirect URI and verifier, revokes the session its exchange made (every
    /// token carrying its `sid`, the status-list entries included) and is audited. The error
    /// to answer with: `invalid_grant`, whatever happens here.
    async fn code_reused(
        &self,
        client: &Client,
        record: &AuthorizationCode,
        source_addr: Option<&str>,
    ) -> Error {
        tracing::warn!(session_id = ?record.session_id, "authorization code reuse detected; revoking its session");
        metrics::counter!(crate::metrics::AUTHORIZATION_CODE_REUSE_DETECTED).increment(1);
        let now = self.clock.now();
        let event = AuditEvent {
            event_type: "authorization_code_reuse_detected",
            actor: Some(client.client_id.clone()),
            subject: Some(record.user_id.to_string()),
            client_id: Some(client.client_id.clone()),
            session_id: record.session_id,
            source_addr: source_addr.map(str::to_owned),
            detail: serde_json::json!({
                "used_at": record.used_at.map(OffsetDateTime::unix_timestamp),
            }),
            created_at: now,
        };
        let Some(session_id) = record.session_id else {
            // The session is gone (purged): nothing left to revoke, but still worth knowing.
            self.record(event).await;
            return Error::InvalidGrant;
        };
        let expire_at = now + self.policy.access_token_ttl + super::keys::CLOCK_SKEW;
        let revoked = self
            .store
            .revoke_session(
                session_id,
                "authorization_code_reuse",
                now,
                expire_at,
                Some(&event),
            )
            .await;
        match revoked {
            Ok(crate::store::SessionRevocation::Revoked) => {
                metrics::counter!(crate::metrics::REVOCATIONS, "selector" => "session")
                    .increment(1);
                if let Err(error) = self.sync_revocations().await {
                    tracing::warn!(%error, "revoked; the change feed will apply it here");
                }
            }
            // Revoked already (a third exchange, or by an admin): the event still counts.
            Ok(crate::store::SessionRevocation::NotLive) => self.record(event).await,
            Err(error) => return error.into(),
        }
        Error::InvalidGrant
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7636 Appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn s256_matches_the_rfc_7636_example_and_nothing_else() {
        assert!(is_code_verifier(VERIFIER));
        assert!(is_code_challenge(CHALLENGE));
        assert!(pkce_s256_matches(VERIFIER, CHALLENGE));
        // The plain method (verifier == challenge) is not S256.
        assert!(!pkce_s256_matches(CHALLENGE, CHALLENGE));
        assert!(!pkce_s256_matches(VERIFIER, &CHALLENGE[1..]));
        assert!(!pkce_s256_matches(VERIFIER, ""));
        let mut other = CHALLENGE.to_owned();
        other.replace_range(42.., "d");
        assert!(!pkce_s256_matches(VERIFIER, &other));
    }

    #[test]
    fn verifiers_are_43_to_128_unreserved_characters() {
        assert!(is_code_verifier(&"a".repeat(43)));
        assert!(is_code_verifier(&"~._-".repeat(32)));
        assert!(!is_code_verifier(&"a".repeat(42)));
        assert!(!is_code_verifier(&"a".repeat(129)));
        assert!(!is_code_verifier(&format!("{}+", "a".repeat(43))));
        assert!(!is_code_challenge(&"a".repeat(44)));
        assert!(!is_code_challenge(&format!("{}=", "a".repeat(42))));
    }

    #[test]
    fn only_our_codes_have_a_digest() {
        let code = format!("tsc_{}", URL_SAFE_NO_PAD.encode([7u8; 32]));
        assert_eq!(code_digest(&code), Some(sha256(code.as_bytes())));
        assert_eq!(code_digest(&code[4..]), None);
        assert_eq!(code_digest("tsc_"), None);
        assert_eq!(code_digest(&format!("tsr_{}", &code[4..])), None);
    }
}
