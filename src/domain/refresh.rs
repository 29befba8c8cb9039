//! Refresh-token rotation and reuse detection (RFC 6749 §6, §10.4; RFC 9700 §4.14), with a retry window that hands back the successor already earned. Uses: store, crypto, clock, model.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use time::OffsetDateTime;

use super::token::{Minting, Target, TokenResponse, audience, narrowed_scope};
use super::{Error, Issuer};
use crate::crypto::random_bytes;
use crate::crypto::secrets::sha256;
use crate::model::{
    AuditEvent, Client, GrantType, NewRefreshToken, RefreshTokenRecord, RefreshTokenState,
    StatusRef, Verdict,
};
use crate::store::{Consumed, Rotation};

/// The prefix that lets secret scanners spot a leaked refresh token.
pub const REFRESH_TOKEN_PREFIX: &str = "tsr_";

/// Rows per housekeeping statement, so no pass holds locks for long.
const PURGE_BATCH: u32 = 500;

/// A refresh token in clear: `tsr_` + base64url(session id (16 bytes) || 32 random bytes).
/// Only its SHA-256 digest is stored; `Debug` is redacted.
pub struct RefreshToken(String);

impl RefreshToken {
    fn generate(session_id: uuid::Uuid) -> Self {
        let mut raw = [0u8; 48];
        raw[..16].copy_from_slice(session_id.as_bytes());
        raw[16..].copy_from_slice(&random_bytes::<32>());
        Self(format!(
            "{REFRESH_TOKEN_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(raw)
        ))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    fn digest(&self) -> [u8; 32] {
        sha256(self.0.as_bytes())
    }
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshToken([redacted])")
    }
}

/// The session id a presented token names, and the digest to look it up by. Every lookup is by
/// (session id, digest), so rotation only touches one session's rows.
pub fn parse_refresh_token(token: &str) -> Option<(uuid::Uuid, [u8; 32])> {
    let encoded = token.strip_prefix(REFRESH_TOKEN_PREFIX)?;
    let raw = URL_SAFE_NO_PAD.decode(encoded).ok()?;
    if raw.len() != 48 {
        return None;
    }
    let session_id = uuid::Uuid::from_slice(&raw[..16]).ok()?;
    Some((session_id, sha256(token.as_bytes())))
}

/// What came with a presented refresh token.
#[derive(Clone, Copy)]
struct Presented<'a> {
    client: &'a Client,
    /// The scope asked for, if any (RFC 6749 §6: at most the one granted).
    scope: Option<&'a str>,
    target: Target<'a>,
    source_addr: Option<&'a str>,
}

/// Binds a sealed successor to the row it belongs to.
fn successor_aad(session_id: uuid::Uuid, consumed_digest: &[u8; 32]) -> Vec<u8> {
    let mut aad = session_id.as_bytes().to_vec();
    aad.extend_from_slice(consumed_digest);
    aad
}

/// CONTRACT (Roles): a refresh carries only what the user still holds of its grant; a grant of
/// which nothing is held any more is `invalid_grant` (the session stays). A request may then
/// narrow it further (RFC 6749 §6), never widen it.
fn held_scope(
    record: &RefreshTokenRecord,
    granted: &str,
    requested: Option<&str>,
) -> Result<String, Error> {
    let held = record.held_roles.retain(granted);
    if held.is_empty() && !granted.is_empty() {
        return Err(Error::InvalidGrant);
    }
    narrowed_scope(&held, requested)
}

impl Issuer {
    /// A fresh refresh token of a session (its first, or a successor), and its stored form.
    pub(crate) fn new_refresh_token(
        &self,
        session_id: uuid::Uuid,
        scope: &str,
        now: OffsetDateTime,
        access_status: Option<StatusRef>,
    ) -> (RefreshToken, NewRefreshToken) {
        let token = RefreshToken::generate(session_id);
        let record = NewRefreshToken {
            session_id,
            token_digest: token.digest(),
            scope: scope.to_owned(),
            created_at: now,
            idle_expires_at: now + self.policy.refresh_token_idle_ttl,
            access_status,
        };
        (token, record)
    }

    /// RFC 6749 §6, rotating. Valid: consumed, successor returned. Consumed already: inside the
    /// retry window with its successor unused, that same successor again; otherwise reuse,
    /// which revokes the whole session. Expired, revoked, unknown or another client's: plain
    /// `invalid_grant`, nothing changed.
    pub async fn refresh(
        &self,
        client: &Client,
        presented: &str,
        scope: Option<&str>,
        target: Target<'_>,
        source_addr: Option<&str>,
    ) -> Result<TokenResponse, Error> {
        let result = self
            .rotate(client, presented, scope, target, source_addr)
            .await;
        match &result {
            Ok(_) => {}
            Err(Error::InvalidGrant) => {
                metrics::counter!(crate::metrics::REFRESHES, "outcome" => "invalid_grant")
                    .increment(1)
            }
            Err(_) => {
                metrics::counter!(crate::metrics::REFRESHES, "outcome" => "error").increment(1)
            }
        }
        result
    }

    async fn rotate(
        &self,
        client: &Client,
        presented: &str,
        scope: Option<&str>,
        target: Target<'_>,
        source_addr: Option<&str>,
    ) -> Result<TokenResponse, Error> {
        if !client.allows(GrantType::RefreshToken) {
            return Err(Error::UnauthorizedClient);
        }
        let (session_id, digest) = parse_refresh_token(presented).ok_or(Error::InvalidGrant)?;
        // Before the lookup that reads the user's roles: see `Minting`.
        let issued_at = self.clock.now();
        let record = self
            .store
            .find_refresh_token(session_id, &digest)
            .await?
            .ok_or(Error::InvalidGrant)?;
        let now = self.clock.now();
        let request = Presented {
            client,
            scope,
            target,
            source_addr,
        };
        let verdict = self.judge(client, &record, now);
        if verdict != Verdict::Rotate {
            return self
                .settle(&request, &record, verdict, now, issued_at)
                .await;
        }
        let audience = audience(client, target)?;
        let scope = held_scope(&record, &record.scope, scope)?;
        let roles = record.held_roles.granting(&scope);

        // The access token's key and status entry first: the entry is recorded on the
        // successor's row, which a retry of this rotation reads back.
        let signer = self.keys.signer()?;
        let status = self.session_status(&signer).await?;
        let (successor, next) = self.new_refresh_token(session_id, &scope, now, status);
        // Grace 0 has no retry window: no successor is ever handed back, so none is sealed.
        let sealed = if self.policy.refresh_reuse_grace.is_zero() {
            None
        } else {
            Some(
                self.master_key
                    .seal_successor(
                        successor.expose().as_bytes(),
                        &successor_aad(session_id, &digest),
                        now,
                    )
                    .map_err(|e| Error::crypto(format!("sealing a successor: {e}")))?,
            )
        };
        // Every rotation is audited, by the rotation's own statement.
        let event = AuditEvent {
            event_type: "refresh",
            actor: Some(client.client_id.clone()),
            subject: Some(record.user_id.to_string()),
            client_id: Some(client.client_id.clone()),
            session_id: Some(session_id),
            source_addr: source_addr.map(str::to_owned),
            detail: serde_json::json!({ "scope": scope }),
            created_at: now,
        };
        let rotation = Rotation {
            digest,
            successor: next,
            successor_ciphertext: sealed,
            now,
            audit: event,
        };
        match self.rotations.consume(rotation).await? {
            Consumed::Rotated => {
                tracing::debug!(session_id = %session_id, "refresh token rotated");
                metrics::counter!(crate::metrics::REFRESHES, "outcome" => "rotated").increment(1);
                let sid = session_id.to_string();
                let subject = record.user_id.to_string();
                let mut response = self.issue(
                    GrantType::RefreshToken,
                    client,
                    &subject,
                    audience,
                    &scope,
                    Minting {
                        session_id: Some(&sid),
                        signer,
                        issued_at,
                        status,
                        roles: &roles,
                    },
                )?;
                response.refresh_token = Some(successor.expose().to_owned());
                return Ok(response);
            }
            Consumed::NotLive => {}
        }
        // Another request consumed it first (or it was revoked meanwhile): judge it as consumed,
        // under the scope this request was narrowed to. The window is judged against a clock
        // reading taken now, after the race was decided: `now` was read before the winner
        // consumed the token, so against its consume time it would fall inside any window, even
        // a window of 0.
        let issued_at = self.clock.now();
        let record = self
            .store
            .find_refresh_token(session_id, &digest)
            .await?
            .ok_or(Error::InvalidGrant)?;
        let now = self.clock.now();
        if !matches!(record.state, RefreshTokenState::Consumed { .. }) {
            return Err(Error::InvalidGrant);
        }
        let request = Presented {
            scope: Some(scope.as_str()).filter(|s| !s.is_empty()),
            ..request
        };
        let verdict = self.judge(client, &record, now);
        self.settle(&request, &record, verdict, now, issued_at)
            .await
    }

    /// What `client` presenting `record` gets ([`RefreshTokenRecord::judge`]), unsealing a
    /// successor it earned.
    fn judge<'r>(
        &self,
        client: &Client,
        record: &'r RefreshTokenRecord,
        now: OffsetDateTime,
    ) -> Verdict<'r> {
        let aad = successor_aad(record.session_id, &record.token_digest);
        record.judge(
            &client.client_id,
            now,
            self.policy.refresh_reuse_grace,
            |sealed| {
                let plain = self.master_key.open_successor(sealed, &aad)?;
                String::from_utf8(plain).ok()
            },
        )
    }

    /// Carries out every verdict but `Rotate`.
    async fn settle(
        &self,
        request: &Presented<'_>,
        record: &RefreshTokenRecord,
        verdict: Verdict<'_>,
        now: OffsetDateTime,
        issued_at: OffsetDateTime,
    ) -> Result<TokenResponse, Error> {
        match verdict {
            Verdict::Rotate | Verdict::Reject => Err(Error::InvalidGrant),
            Verdict::RevokeDisabled => {
                self.revoke_session_for(record, "user_disabled", now, None)
                    .await?;
                Err(Error::InvalidGrant)
            }
            Verdict::Retry {
                successor,
                granted_scope,
            } => {
                // The successor is handed out under the rules it would meet itself.
                let audience = audience(request.client, request.target)?;
                let scope = held_scope(record, granted_scope, request.scope)?;
                let roles = record.held_roles.granting(&scope);
                tracing::debug!(session_id = %record.session_id, "refresh retried inside the window");
                let sid = record.session_id.to_string();
                let subject = record.user_id.to_string();
                // The successor's entry again: it is the one its session's revocation sets.
                let minting = Minting {
                    signer: self.keys.signer()?,
                    session_id: Some(&sid),
                    issued_at,
                    status: record.successor_status,
                    roles: &roles,
                };
                let mut response = self.issue(
                    GrantType::RefreshToken,
                    request.client,
                    &subject,
                    audience,
                    &scope,
                    minting,
                )?;
                metrics::counter!(crate::metrics::REFRESHES, "outcome" => "retried").increment(1);
                response.refresh_token = Some(successor);
                Ok(response)
            }
            Verdict::Reuse {
                consumed_at,
                within_window,
            } => {
                tracing::warn!(session_id = %record.session_id, "refresh token reuse detected; revoking the session");
                let client_id = &request.client.client_id;
                let event = AuditEvent {
                    event_type: "refresh_token_reuse_detected",
                    actor: Some(client_id.clone()),
                    subject: Some(record.user_id.to_string()),
                    client_id: Some(client_id.clone()),
                    session_id: Some(record.session_id),
                    source_addr: request.source_addr.map(str::to_owned),
                    detail: serde_json::json!({
                        "consumed_at": consumed_at.unix_timestamp(),
                        "within_retry_window": within_window,
                    }),
                    created_at: now,
                };
                self.revoke_session_for(record, "refresh_token_reuse", now, Some(&event))
                    .await?;
                metrics::counter!(crate::metrics::REFRESH_REUSE_DETECTED).increment(1);
                Err(Error::InvalidGrant)
            }
        }
    }

    async fn revoke_session_for(
        &self,
        record: &RefreshTokenRecord,
        reason: &str,
        now: OffsetDateTime,
        event: Option<&AuditEvent>,
    ) -> Result<(), Error> {
        // Access tokens carrying the sid stay inactive until the last of them has expired.
        let expire_at = now + self.policy.access_token_ttl + super::keys::CLOCK_SKEW;
        self.store
            .revoke_session(record.session_id, reason, now, expire_at, event)
            .await?;
        Ok(())
    }

    /// One housekeeping pass: erases retry-window successors whose window has closed and
    /// deletes rows of no further use (status-list rows too), in small batches. Returns the
    /// rows touched.
    pub async fn housekeeping(&self) -> Result<u64, Error> {
        let now = self.clock.now();
        let erase_before = now - self.policy.refresh_reuse_grace;
        let mut total = 0;
        for _ in 0..20 {
            let touched = self
                .store
                .purge_batch(now, erase_before, PURGE_BATCH)
                .await?;
            total += touched;
            if touched < u64::from(PURGE_BATCH) {
                break;
            }
        }
        // Status-list rows no live token can name any more (see `status_purge_horizon`).
        let horizon = self.status_purge_horizon(now);
        for _ in 0..20 {
            let touched = self.store.purge_status_lists(&horizon, PURGE_BATCH).await?;
            total += touched;
            if touched < u64::from(PURGE_BATCH) {
                break;
            }
        }
        Ok(total)
    }

    /// Housekeeping every 10 seconds until aborted (one instance at a time does the work).
    pub async fn run_housekeeping(self: std::sync::Arc<Self>) {
        // Every 10 s: up to 20 batches of 500 a pass keeps erasing sealed successors faster than
        // a single instance can rotate (about 1,000 a second against ~700 measured).
        let mut ticker = tokio::time::interval(std::time::Duration::from_secs(10));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            match self.housekeeping().await {
                Ok(0) => {}
                Ok(touched) => tracing::info!(touched, "housekeeping"),
                Err(error) => tracing::warn!(%error, "housekeeping failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_tokens_carry_their_session_and_256_bits() {
        let session = uuid::Uuid::new_v4();
        let token = RefreshToken::generate(session);
        assert!(token.expose().starts_with("tsr_"));
        let (parsed, digest) = parse_refresh_token(token.expose()).unwrap();
        assert_eq!(parsed, session);
        assert_eq!(digest, token.digest());
        assert_ne!(RefreshToken::generate(session).expose(), token.expose());
        assert_eq!(format!("{token:?}"), "RefreshToken([redacted])");
        assert!(parse_refresh_token("tsr_short").is_none());
        assert!(parse_refresh_token("tss_whatever").is_none());
        assert!(parse_refresh_token("").is_none());
    }
}
