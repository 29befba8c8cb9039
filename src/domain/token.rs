//! The token endpoint's grants: client_credentials (RFC 6749 §4.4) and password (§4.3), with scope (§3.3) and audience (RFC 8707) rules, and the sign-in and login session they share with the authorization code grant. Uses: store, crypto, clock, model.

use std::net::IpAddr;
use std::sync::Arc;

use serde::Serialize;
use unicode_normalization::UnicodeNormalization;

use time::OffsetDateTime;

use super::keys::{AccessTokenRequest, KeyRingError};
use super::refresh::RefreshToken;
use super::throttle::{Principal, Verdict};
use super::{Error, Issuer};
use crate::crypto::keys::Signer;
use crate::model::{Client, GrantType, HeldRoles, NewRefreshToken, Session, StatusRef, User};

/// RFC 6749 §5.1. No `Debug`: it carries tokens.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    /// An RFC 9068 JWT (`typ: at+jwt`).
    pub access_token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds: the configured access-token lifetime.
    pub expires_in: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub scope: String,
    /// `tsr_…`: with the password grant (when the client may refresh) and every refresh.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// How an access token is about to be minted: by which key, issued when (a user's token: just
/// before the user's roles were read, so a role change committed after the read has a later
/// cut-off and reaches it), in which session, naming which status-list entry (taken from that
/// key's list before the session's rows are written), through which roles.
pub(crate) struct Minting<'a> {
    pub signer: Arc<Signer>,
    pub issued_at: OffsetDateTime,
    /// The session (`sid`) of a login's or a refresh's token.
    pub session_id: Option<&'a str>,
    pub status: Option<StatusRef>,
    /// The roles that granted a user's token its scope (its `roles` claim); none for a
    /// client's own.
    pub roles: &'a [String],
}

/// A login session about to be stored, and what its tokens are minted with.
pub(crate) struct Login {
    pub session: Session,
    pub first: Option<(RefreshToken, NewRefreshToken)>,
    pub signer: Arc<Signer>,
    pub issued_at: OffsetDateTime,
    /// The roles granting the session's scope (the `roles` claim).
    pub roles: Vec<String>,
}

/// The audience a client asks for: RFC 8707 `resource`, or the `audience` parameter.
#[derive(Debug, Clone, Copy, Default)]
pub struct Target<'a> {
    pub resource: Option<&'a str>,
    pub audience: Option<&'a str>,
}

impl Issuer {
    /// RFC 6749 §4.4: a confidential client acting for itself; `sub` is the client id, and
    /// there is no refresh token.
    pub async fn client_credentials(
        &self,
        client: &Client,
        scope: Option<&str>,
        target: Target<'_>,
    ) -> Result<TokenResponse, Error> {
        if client.is_public() || !client.allows(GrantType::ClientCredentials) {
            return Err(Error::UnauthorizedClient);
        }
        let scope = granted_scope(client, scope)?;
        let audience = audience(client, target)?;
        let signer = self.keys.signer()?;
        let issued_at = self.clock.now();
        let status = self
            .client_status(&signer, &client.client_id, issued_at)
            .await?;
        self.issue(
            GrantType::ClientCredentials,
            client,
            &client.client_id,
            audience,
            &scope,
            Minting {
                session_id: None,
                signer,
                issued_at,
                status,
                roles: &[],
            },
        )
    }

    /// RFC 6749 §4.3. Unknown user, wrong password and disabled user are the same
    /// `invalid_grant` after the same work (see [`Issuer::sign_in`]).
    pub async fn password(
        &self,
        client: &Arc<Client>,
        username: &str,
        password: &str,
        scope: Option<&str>,
        target: Target<'_>,
        source_addr: Option<IpAddr>,
    ) -> Result<TokenResponse, Error> {
        if !client.allows(GrantType::Password) {
            return Err(Error::UnauthorizedClient);
        }
        let requested = scope;
        let scope = granted_scope(client, scope)?;
        let audience = audience(client, target)?;
        let user = self
            .sign_in(client, username, password, source_addr)
            .await?;
        // The token counts as issued before the roles are read: a role change committed after
        // the read has a later cut-off, and so reaches it.
        let issued_at = self.clock.now();
        let held = self.store.held_roles(user.user_id).await?;
        let scope = user_scope(client, &scope, requested.is_some(), &held)?;
        let login = self
            .start_login(client, user.user_id, scope, &held, issued_at)
            .await?;
        let first = login.first.as_ref().map(|(_, record)| record);
        let stored = self.store.add_session(&login.session, first).await?;
        if stored == crate::store::SessionAdded::UserDisabled {
            // Disabled while this login was being verified.
            return Err(Error::InvalidGrant);
        }
        let source = source_addr.map(|ip| ip.to_string());
        self.finish_login(
            GrantType::Password,
            client,
            login,
            audience,
            source.as_deref(),
        )
        .await
    }

    /// A user's credentials, checked as the password grant and the sign-in page both do.
    /// Unknown user, wrong password and disabled user are the same `invalid_grant` after the
    /// same work: an attempt counted before it is verified (per username and per source), a
    /// lookup, one argon2id verification (against a dummy hash when there is no user) and a
    /// recorded failure (`login_failed`, with the source address). A throttled attempt is
    /// `Throttled` before any of it.
    #[tracing::instrument(skip_all, fields(client_id = %client.client_id))]
    pub async fn sign_in(
        &self,
        client: &Client,
        username: &str,
        password: &str,
        source_addr: Option<IpAddr>,
    ) -> Result<User, Error> {
        let key = username_key(username);
        // Counted before the hash is verified: parallel guesses get no more tries than
        // sequential ones.
        let attempt = self
            .throttle
            .reserve(Principal::User(&key), source_addr)
            .await?;
        let user = match self.store.find_user_by_username_key(&key).await {
            Ok(user) => user,
            Err(error) => {
                self.throttle.settle(attempt, Verdict::Unverified).await;
                return Err(error.into());
            }
        };
        let matches = match self
            .passwords
            .verify(user.as_ref().map(|u| u.password_phc.as_str()), password)
            .await
        {
            Ok(matches) => matches,
            Err(error) => {
                self.throttle.settle(attempt, Verdict::Unverified).await;
                return Err(error);
            }
        };
        match user {
            Some(user) if matches && !user.disabled => {
                self.throttle.settle(attempt, Verdict::Succeeded).await;
                Ok(user)
            }
            _ => {
                self.throttle.settle(attempt, Verdict::Failed).await;
                tracing::info!("password login failed");
                // No username for unknown users: it may be a mistyped password.
                let source = source_addr.map(|ip| ip.to_string());
                let mut event = self.event(
                    "login_failed",
                    &client.client_id,
                    source.as_deref(),
                    serde_json::json!({}),
                );
                event.client_id = Some(client.client_id.clone());
                event.subject = user.map(|u| u.user_id.to_string());
                self.record(event).await;
                Err(Error::InvalidGrant)
            }
        }
    }

    /// A new login session of `user_id` (its `sid`), not yet stored: its status entry and
    /// signing key (taken first: the entry is recorded on the session row) and, when the
    /// client may refresh, its first refresh token (CONTRACT: POST /token). `issued_at` was
    /// taken before `held` was read (see [`Minting`]).
    pub(crate) async fn start_login(
        &self,
        client: &Client,
        user_id: uuid::Uuid,
        scope: String,
        held: &HeldRoles,
        issued_at: OffsetDateTime,
    ) -> Result<Login, Error> {
        let roles = held.granting(&scope);
        let signer = self.keys.signer()?;
        let status = self.session_status(&signer).await?;
        let now = self.clock.now();
        let session = Session {
            session_id: uuid::Uuid::new_v4(),
            client_id: client.client_id.clone(),
            user_id,
            scope,
            created_at: now,
            expires_at: now + self.policy.refresh_token_absolute_ttl,
            status,
        };
        let first = client
            .allows(GrantType::RefreshToken)
            .then(|| self.new_refresh_token(session.session_id, &session.scope, now, None));
        Ok(Login {
            session,
            first,
            signer,
            issued_at,
            roles,
        })
    }

    /// After the login's session is stored: the `session_created` event and the tokens.
    pub(crate) async fn finish_login(
        &self,
        grant: GrantType,
        client: &Client,
        login: Login,
        audience: &str,
        source_addr: Option<&str>,
    ) -> Result<TokenResponse, Error> {
        let Login {
            session,
            first,
            signer,
            issued_at,
            roles,
        } = login;
        let sid = session.session_id.to_string();
        tracing::info!(session_id = %sid, grant = grant.as_str(), "session created");
        let mut event = self.event(
            "session_created",
            &client.client_id,
            source_addr,
            serde_json::json!({"scope": session.scope, "grant_type": grant.as_str()}),
        );
        event.subject = Some(session.user_id.to_string());
        event.client_id = Some(client.client_id.clone());
        event.session_id = Some(session.session_id);
        self.record(event).await;
        let subject = session.user_id.to_string();
        let mut response = self.issue(
            grant,
            client,
            &subject,
            audience,
            &session.scope,
            Minting {
                session_id: Some(&sid),
                signer,
                issued_at,
                status: session.status,
                roles: &roles,
            },
        )?;
        response.refresh_token = first.map(|(token, _)| token.expose().to_owned());
        Ok(response)
    }

    pub(crate) fn issue(
        &self,
        grant: GrantType,
        client: &Client,
        subject: &str,
        audience: &str,
        scope: &str,
        minting: Minting<'_>,
    ) -> Result<TokenResponse, Error> {
        let request = AccessTokenRequest {
            subject,
            client_id: &client.client_id,
            audience,
            scope: Some(scope),
            session_id: minting.session_id,
            roles: Some(minting.roles).filter(|r| !r.is_empty()),
            issued_at: None,
        };
        let minted = self
            .keys
            .mint_with(&minting.signer, minting.issued_at, &request, minting.status)
            .map_err(KeyRingError::from)?;
        tracing::debug!(jti = %minted.claims.jti, sub = %subject, "access token issued");
        self.usage
            .issued(&client.client_id, scope, self.clock.now());
        let kind = if client.is_public() {
            "public"
        } else {
            "confidential"
        };
        metrics::counter!(crate::metrics::TOKENS_ISSUED, "grant" => grant.as_str(), "client_kind" => kind)
            .increment(1);
        Ok(TokenResponse {
            access_token: minted.token,
            token_type: "Bearer",
            expires_in: self.policy.access_token_ttl.as_secs(),
            scope: scope.to_owned(),
            refresh_token: None,
        })
    }
}

/// RFC 6749 §3.3: the requested scope must be a subset of what the client may have; without a
/// request, everything it may have. Duplicates collapse; order is kept.
pub fn granted_scope(client: &Client, requested: Option<&str>) -> Result<String, Error> {
    let Some(requested) = requested else {
        return Ok(client.scopes.join(" "));
    };
    let mut granted: Vec<&str> = Vec::new();
    for token in requested.split(' ').filter(|t| !t.is_empty()) {
        if !is_scope_token(token) || !client.scopes.iter().any(|s| s == token) {
            return Err(Error::InvalidScope);
        }
        if !granted.contains(&token) {
            granted.push(token);
        }
    }
    Ok(granted.join(" "))
}

/// CONTRACT (POST /token, password; Roles): a user's token carries only scopes both the client
/// allows (`granted`, already checked against the client) and the user holds. Asking for one
/// the user does not hold, or holding none of the client's, is `invalid_scope`; without a
/// request, every scope in both.
pub fn user_scope(
    client: &Client,
    granted: &str,
    requested: bool,
    held: &HeldRoles,
) -> Result<String, Error> {
    if !client.scopes.iter().any(|s| held.holds(s)) {
        return Err(Error::InvalidScope);
    }
    let scope = held.retain(granted);
    if requested && scope != granted {
        return Err(Error::InvalidScope);
    }
    Ok(scope)
}

/// RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
pub fn is_scope_token(token: &str) -> bool {
    !token.is_empty()
        && token
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

/// RFC 6749 §6: a refresh may narrow the scope of the grant, never widen it.
pub fn narrowed_scope(granted: &str, requested: Option<&str>) -> Result<String, Error> {
    let Some(requested) = requested else {
        return Ok(granted.to_owned());
    };
    let allowed: Vec<&str> = granted.split(' ').filter(|t| !t.is_empty()).collect();
    let mut narrowed: Vec<&str> = Vec::new();
    for token in requested.split(' ').filter(|t| !t.is_empty()) {
        if !allowed.contains(&token) {
            return Err(Error::InvalidScope);
        }
        if !narrowed.contains(&token) {
            narrowed.push(token);
        }
    }
    Ok(narrowed.join(" "))
}

/// The requested audience if the client may have it, else its first allowed one.
pub(crate) fn audience<'a>(client: &'a Client, target: Target<'a>) -> Result<&'a str, Error> {
    let requested = match (target.resource, target.audience) {
        (Some(_), Some(_)) => {
            return Err(Error::invalid_request(
                "send resource or audience, not both",
            ));
        }
        (Some(r), None) | (None, Some(r)) => Some(r),
        (None, None) => None,
    };
    match requested {
        Some(wanted) => client
            .audiences
            .iter()
            .find(|a| *a == wanted)
            .map(String::as_str)
            .ok_or(Error::InvalidTarget),
        None => client
            .audiences
            .first()
            .map(String::as_str)
            .ok_or(Error::InvalidTarget),
    }
}

/// NFKC, then case fold, then NFKC again: names that look the same compare the same
/// (Unicode's compatibility caseless matching, UAX #15 and §3.13).
pub fn username_key(username: &str) -> String {
    use caseless::Caseless;
    username.trim().nfkc().default_case_fold().nfkc().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visually_equal_usernames_share_a_key() {
        assert_eq!(username_key("Alice"), username_key("alice"));
        assert_eq!(username_key("ＡＬＩＣＥ"), username_key("alice"));
        assert_eq!(username_key("straße"), username_key("STRASSE"));
        assert_eq!(username_key(" bob "), username_key("bob"));
        assert_ne!(username_key("alice"), username_key("alicia"));
    }

    #[test]
    fn scope_tokens_follow_rfc6749() {
        assert!(is_scope_token("read:all"));
        assert!(!is_scope_token("a\"b"));
        assert!(!is_scope_token("a\\b"));
        assert!(!is_scope_token("é"));
        assert!(!is_scope_token(""));
    }
}

#[cfg(test)]
mod scope_and_audience_tests {
    use super::*;
    use crate::model::ClientSecretHash;

    fn client(scopes: &[&str], audiences: &[&str]) -> Client {
        let now = time::OffsetDateTime::UNIX_EPOCH;
        Client {
            client_id: "web".into(),
            name: None,
            secret: ClientSecretHash::Digest([7; 32]),
            grant_types: vec![GrantType::ClientCredentials, GrantType::Password],
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            audiences: audiences.iter().map(|s| s.to_string()).collect(),
            is_admin: false,
            can_introspect: false,
            disabled: false,
            created_at: now,
            updated_at: now,
            secret_created_at: Some(now),
            secret_max_age: None,
            previous_secret: None,
            redirect_uris: Vec::new(),
            first_party: false,
        }
    }

    fn target<'a>(resource: Option<&'a str>, audience: Option<&'a str>) -> Target<'a> {
        Target { resource, audience }
    }

    #[test]
    fn without_a_request_the_client_gets_every_scope_it_may_have() {
        let web = client(&["write", "read", "admin:keys"], &["https://api"]);
        assert_eq!(granted_scope(&web, None).unwrap(), "write read admin:keys");
        assert_eq!(
            granted_scope(&client(&[], &["https://api"]), None).unwrap(),
            ""
        );
    }

    #[test]
    fn a_requested_scope_is_a_subset_in_request_order_without_duplicates() {
        let web = client(&["read", "write", "admin"], &["https://api"]);
        assert_eq!(
            granted_scope(&web, Some("write read")).unwrap(),
            "write read"
        );
        assert_eq!(
            granted_scope(&web, Some("read read write read")).unwrap(),
            "read write"
        );
        // Separators are single spaces; empty tokens between them are ignored.
        assert_eq!(
            granted_scope(&web, Some("  read   write ")).unwrap(),
            "read write"
        );
        // An empty request asks for nothing and gets nothing.
        assert_eq!(granted_scope(&web, Some("")).unwrap(), "");
    }

    #[test]
    fn a_scope_the_client_may_not_have_is_refused_whole() {
        let web = client(&["read", "write"], &["https://api"]);
        for requested in [
            "delete",
            "read delete",
            "READ",
            "read\twrite",
            "rea",
            "read,write",
        ] {
            assert!(
                matches!(
                    granted_scope(&web, Some(requested)),
                    Err(Error::InvalidScope)
                ),
                "{requested:?}"
            );
        }
        // Even a registered scope is refused if it is no scope token (registration forbids it).
        let odd = client(&["a\"b"], &["https://api"]);
        assert!(matches!(
            granted_scope(&odd, Some("a\"b")),
            Err(Error::InvalidScope)
        ));
    }

    #[test]
    fn scope_token_characters_are_exactly_rfc6749s() {
        for b in 0u8..=0x7f {
            let allowed = b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b);
            let token = (b as char).to_string();
            assert_eq!(is_scope_token(&token), allowed, "byte {b:#04x}");
        }
        assert!(is_scope_token("!#[]~"));
        assert!(!is_scope_token("read write"));
    }

    #[test]
    fn a_refresh_may_narrow_the_scope_but_never_widen_it() {
        assert_eq!(narrowed_scope("read write", None).unwrap(), "read write");
        assert_eq!(
            narrowed_scope("read write", Some("write")).unwrap(),
            "write"
        );
        assert_eq!(
            narrowed_scope("read write", Some("write read write")).unwrap(),
            "write read"
        );
        assert_eq!(narrowed_scope("read write", Some(" ")).unwrap(), "");
        for requested in ["admin", "read admin", "Read"] {
            assert!(
                matches!(
                    narrowed_scope("read write", Some(requested)),
                    Err(Error::InvalidScope)
                ),
                "{requested:?}"
            );
        }
        // An empty grant cannot be widened to anything.
        assert!(matches!(
            narrowed_scope("", Some("read")),
            Err(Error::InvalidScope)
        ));
        assert_eq!(narrowed_scope("", None).unwrap(), "");
    }

    #[test]
    fn the_audience_defaults_to_the_clients_first() {
        let web = client(&[], &["https://api", "https://other"]);
        assert_eq!(audience(&web, target(None, None)).unwrap(), "https://api");
    }

    #[test]
    fn resource_and_audience_both_name_an_allowed_audience() {
        let web = client(&[], &["https://api", "https://other"]);
        assert_eq!(
            audience(&web, target(Some("https://other"), None)).unwrap(),
            "https://other"
        );
        assert_eq!(
            audience(&web, target(None, Some("https://other"))).unwrap(),
            "https://other"
        );
        assert!(matches!(
            audience(&web, target(Some("https://api"), Some("https://api"))),
            Err(Error::InvalidRequest(_))
        ));
    }

    #[test]
    fn an_audience_must_match_exactly() {
        let web = client(&[], &["https://api"]);
        for wanted in [
            "https://api/",
            "HTTPS://API",
            "https://api.evil",
            "",
            "https://other",
        ] {
            assert!(
                matches!(
                    audience(&web, target(Some(wanted), None)),
                    Err(Error::InvalidTarget)
                ),
                "{wanted:?}"
            );
            assert!(
                matches!(
                    audience(&web, target(None, Some(wanted))),
                    Err(Error::InvalidTarget)
                ),
                "{wanted:?}"
            );
        }
        // A client without audiences gets none by default either.
        let none = client(&[], &[]);
        assert!(matches!(
            audience(&none, target(None, None)),
            Err(Error::InvalidTarget)
        ));
    }

    #[test]
    fn grants_and_publicness_come_from_the_registration() {
        let mut web = client(&[], &["https://api"]);
        assert!(web.allows(GrantType::Password));
        assert!(!web.allows(GrantType::RefreshToken));
        assert!(!web.is_public());
        web.secret = ClientSecretHash::None;
        assert!(web.is_public());
        web.secret = ClientSecretHash::Phc("$argon2id$x".into());
        assert!(!web.is_public());
    }
}
