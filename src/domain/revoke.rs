//! Revocation (RFC 7009, plus admin selectors for offboarding and compromise), introspection (RFC 7662) and the audit log. Uses: store, crypto, clock, model.

use serde::Serialize;
use serde_json::{Value, json};

use super::keys::CLOCK_SKEW;
use super::refresh::parse_refresh_token;
use super::token::username_key;
use super::{Error, Issuer};
use crate::model::{AuditEvent, AuditFilter, AuditRecord, Client, RevocationKind};
use crate::store::{RevocationAdded, SessionRevocation};

/// The admin selectors of POST /revoke.
#[derive(Debug, Clone)]
pub enum Selector {
    /// The exact `sub`: a user's id, or whatever else a token carries (a client's id).
    Subject(String),
    /// A user by username: offboarding by name.
    Username(String),
    ClientId(String),
    SessionId(String),
    Kid(String),
}

impl Selector {
    fn name(&self) -> &'static str {
        match self {
            Self::Subject(_) => "subject",
            Self::Username(_) => "username",
            Self::ClientId(_) => "client_id",
            Self::SessionId(_) => "session_id",
            Self::Kid(_) => "kid",
        }
    }

    fn value(&self) -> &str {
        match self {
            Self::Subject(v)
            | Self::Username(v)
            | Self::ClientId(v)
            | Self::SessionId(v)
            | Self::Kid(v) => v,
        }
    }
}

/// RFC 7662 §2.2: the claims of a live token, or only `{"active": false}`.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct Introspection {
    pub active: bool,
    /// `Bearer` for an access token, `refresh_token` for a refresh token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

/// The answer to an admin revocation (CONTRACT: POST /revoke).
#[derive(Debug, Serialize)]
pub struct RevocationSummary {
    pub selector: &'static str,
    pub value: String,
    pub sessions_revoked: u64,
    pub disabled: bool,
}

impl Issuer {
    /// RFC 7009 §2.1: revokes `token` if it was issued to `caller` (an admin may revoke any).
    /// A refresh token takes its whole session with it; an access token is revoked by its jti.
    /// Unknown, invalid or another client's tokens change nothing and are not reported.
    pub async fn revoke_token(
        &self,
        caller: &Client,
        token: &str,
        source_addr: Option<&str>,
    ) -> Result<(), Error> {
        let now = self.clock.now();
        if let Some((session_id, digest)) = parse_refresh_token(token) {
            let Some(record) = self.store.find_refresh_token(session_id, &digest).await? else {
                return Ok(());
            };
            if !record.owned_by(&caller.client_id) && !caller.is_admin {
                return Ok(());
            }
            let mut event = self.event(
                "revoked",
                &caller.client_id,
                source_addr,
                json!({"selector": "token", "token_type": "refresh_token"}),
            );
            event.client_id = Some(record.client_id.clone());
            let event = event.with_subject(record.user_id.to_string(), Some(record.session_id));
            let revoked = self
                .store
                .revoke_session(
                    session_id,
                    "revoked",
                    now,
                    now + self.policy.access_token_ttl + CLOCK_SKEW,
                    Some(&event),
                )
                .await?;
            // Already revoked: nothing was written, so there is nothing to apply.
            if revoked == SessionRevocation::NotLive {
                return Ok(());
            }
            metrics::counter!(crate::metrics::REVOCATIONS, "selector" => "token").increment(1);
            self.sync_revocations().await?;
            return Ok(());
        }
        let Ok(claims) = self.keys.verify(token) else {
            return Ok(());
        };
        if claims.client_id != caller.client_id && !caller.is_admin {
            return Ok(());
        }
        let expires_at =
            time::OffsetDateTime::from_unix_timestamp(claims.exp).unwrap_or(now) + CLOCK_SKEW;
        let session = claims
            .sid
            .as_deref()
            .and_then(|s| uuid::Uuid::parse_str(s).ok());
        let mut event = self.event(
            "revoked",
            &caller.client_id,
            source_addr,
            json!({"selector": "token", "token_type": "access_token", "jti": claims.jti}),
        );
        event.client_id = Some(claims.client_id.clone());
        let event = event.with_subject(claims.sub.clone(), session);
        let added = self
            .store
            .add_revocation(
                RevocationKind::Jti,
                &claims.jti,
                now,
                expires_at,
                &event,
                // Its status-list entry is set with it (siblings sharing the entry with it too).
                claims.status.as_ref().and_then(|s| s.entry(&self.issuer)),
            )
            .await?;
        if added == RevocationAdded::AlreadyRevoked {
            return Ok(());
        }
        metrics::counter!(crate::metrics::REVOCATIONS, "selector" => "token").increment(1);
        self.sync_revocations().await?;
        Ok(())
    }

    /// Admin revocation by selector: offboarding (`subject` or `username`, optionally disabling the user), a
    /// client's compromise (`client_id`), one session, or a signing key's compromise (`kid`).
    /// The caller has checked that `actor` is an admin.
    #[tracing::instrument(skip_all, fields(%actor, selector = selector.name()))]
    pub async fn revoke_selector(
        &self,
        actor: &str,
        selector: Selector,
        disable: bool,
        source_addr: Option<&str>,
    ) -> Result<RevocationSummary, Error> {
        if disable && matches!(selector, Selector::SessionId(_) | Selector::Kid(_)) {
            return Err(Error::invalid_request(
                "disable applies to subject, username and client_id only",
            ));
        }
        let now = self.clock.now();
        let cutoff_expires_at = now + self.policy.access_token_ttl + CLOCK_SKEW;
        let detail =
            json!({"selector": selector.name(), "value": selector.value(), "disable": disable});
        let event = self.event("revoked", actor, source_addr, detail);
        let (sessions_revoked, disabled) = match &selector {
            Selector::Subject(_) | Selector::Username(_) => {
                let (sub, user) = match &selector {
                    // The exact `sub`, never reinterpreted: a client's id is a `sub` too.
                    Selector::Subject(subject) => {
                        let user = match uuid::Uuid::parse_str(subject) {
                            Ok(id) => self.store.find_user(id).await?,
                            Err(_) => None,
                        };
                        (subject.clone(), user)
                    }
                    Selector::Username(username) => {
                        let user = self
                            .store
                            .find_user_by_username_key(&username_key(username))
                            .await?
                            .ok_or(Error::NotFound("user"))?;
                        (user.user_id.to_string(), Some(user))
                    }
                    _ => unreachable!("matched above"),
                };
                if disable && user.is_none() {
                    return Err(Error::NotFound("user"));
                }
                let event = event.with_subject(sub.clone(), None);
                let n = self
                    .store
                    .revoke_principal(
                        RevocationKind::Subject,
                        &sub,
                        disable,
                        now,
                        cutoff_expires_at,
                        &event,
                    )
                    .await?;
                (n, disable)
            }
            Selector::ClientId(client_id) => {
                let Some(client) = self.store.find_client(client_id).await? else {
                    return Err(Error::NotFound("client"));
                };
                if disable {
                    self.ensure_admin_may_disable(actor, &client).await?;
                }
                let mut event = event;
                event.client_id = Some(client_id.clone());
                let n = self
                    .store
                    .revoke_principal(
                        RevocationKind::Client,
                        client_id,
                        disable,
                        now,
                        cutoff_expires_at,
                        &event,
                    )
                    .await?;
                (n, disable)
            }
            Selector::SessionId(session) => {
                let Ok(session_id) = uuid::Uuid::parse_str(session) else {
                    return Err(Error::NotFound("session"));
                };
                let event = AuditEvent {
                    session_id: Some(session_id),
                    ..event
                };
                let revoked = self
                    .store
                    .revoke_session(session_id, "revoked", now, cutoff_expires_at, Some(&event))
                    .await?;
                (u64::from(revoked == SessionRevocation::Revoked), false)
            }
            Selector::Kid(kid) => {
                // The audit event commits with the revocation (and not at all for a key
                // already revoked).
                self.keys.revoke(kid, Some(&event)).await?;
                (0, false)
            }
        };
        tracing::warn!(
            value = selector.value(),
            sessions_revoked,
            disabled,
            "revoked by an admin"
        );
        metrics::counter!(crate::metrics::REVOCATIONS, "selector" => selector.name()).increment(1);
        self.refresh_after_write().await;
        Ok(RevocationSummary {
            selector: selector.name(),
            value: selector.value().to_owned(),
            sessions_revoked,
            disabled,
        })
    }

    /// RFC 7662: the full answer for a live token, `{"active": false}` for anything else.
    /// Only clients allowed to introspect (or admins) may ask; introspecting never uses a
    /// token up.
    pub async fn introspect(&self, caller: &Client, token: &str) -> Result<Introspection, Error> {
        // A public client proves nothing about itself: it may never introspect.
        if caller.is_public() || (!caller.can_introspect && !caller.is_admin) {
            return Err(Error::AccessDenied);
        }
        self.ensure_fresh_revocations().await?;
        let inactive = Introspection::default();
        let now = self.clock.now();
        if let Some((session_id, digest)) = parse_refresh_token(token) {
            let Some(record) = self.store.find_refresh_token(session_id, &digest).await? else {
                return Ok(inactive);
            };
            if !record.is_active(now) {
                return Ok(inactive);
            }
            let expires_at = record.expires_at();
            return Ok(Introspection {
                active: true,
                token_type: Some("refresh_token"),
                sub: Some(record.user_id.to_string()),
                client_id: Some(record.client_id),
                scope: Some(record.scope),
                sid: Some(record.session_id.to_string()),
                iat: Some(record.created_at.unix_timestamp()),
                exp: Some(expires_at.unix_timestamp()),
                ..inactive
            });
        }
        let Ok(claims) = self.keys.verify(token) else {
            return Ok(inactive);
        };
        if self.revocations.is_revoked(&claims) {
            return Ok(inactive);
        }
        // A disabled (or removed) client's tokens are inactive: an instance that had not yet
        // learned of the disable may have minted some after the cut-off.
        if self
            .clients
            .get(&claims.client_id)
            .is_none_or(|client| client.disabled)
        {
            return Ok(inactive);
        }
        Ok(Introspection {
            active: true,
            token_type: Some("Bearer"),
            sub: Some(claims.sub),
            client_id: Some(claims.client_id),
            scope: Some(claims.scope.unwrap_or_default()),
            aud: Some(claims.aud),
            iss: Some(claims.iss),
            exp: Some(claims.exp),
            iat: Some(claims.iat),
            jti: Some(claims.jti),
            sid: claims.sid,
        })
    }

    /// GET /admin/audit: newest first.
    pub async fn audit(&self, filter: AuditFilter) -> Result<Vec<AuditRecord>, Error> {
        Ok(self.store.list_audit(&filter).await?)
    }

    /// Records a security event; a failure to record is logged, never fatal to the request.
    pub(crate) async fn record(&self, event: AuditEvent) {
        if let Err(error) = self.store.add_audit_event(&event).await {
            tracing::error!(%error, event = event.event_type, "could not write an audit event");
        }
    }

    pub(crate) fn event(
        &self,
        event_type: &'static str,
        actor: &str,
        source_addr: Option<&str>,
        detail: Value,
    ) -> AuditEvent {
        AuditEvent {
            event_type,
            actor: Some(actor.to_owned()),
            subject: None,
            client_id: None,
            session_id: None,
            source_addr: source_addr.map(str::to_owned),
            detail,
            created_at: self.clock.now(),
        }
    }

    pub(crate) async fn sync_revocations(&self) -> Result<(), Error> {
        self.revocations
            .catch_up(self.store.as_ref(), self.clock.now())
            .await?;
        Ok(())
    }
}

impl AuditEvent {
    fn with_subject(mut self, subject: String, session_id: Option<uuid::Uuid>) -> Self {
        self.subject = Some(subject);
        self.session_id = session_id;
        self
    }
}
