//! Administration: clients, users and signing keys, as the admin API and the CLI use them. Uses: store, crypto, clock, model.

use std::net::IpAddr;

use super::token::{is_scope_token, username_key};
use super::{Error, Issuer};
use crate::crypto::keys::base64url;
use crate::crypto::random_bytes;
use crate::crypto::secrets::ClientSecret;
use crate::model::{Client, ClientSecretHash, GrantType, User};
use crate::store::{SecretRotation, StoreError};

/// What PATCH /admin/clients/{id} changes; `None` leaves a part as it is.
pub use crate::store::ClientChange;

/// What an admin asks for when registering a client (CONTRACT: POST /admin/clients).
#[derive(Debug, Clone, Default)]
pub struct NewClient {
    pub client_id: Option<String>,
    pub name: Option<String>,
    pub grant_types: Vec<String>,
    pub scopes: Vec<String>,
    pub audiences: Vec<String>,
    pub public: bool,
    pub admin: bool,
    pub introspect: bool,
    /// Seconds; the global setting applies when `None`.
    pub secret_max_age: Option<i64>,
    /// Where /authorize may redirect; required with the authorization_code grant.
    pub redirect_uris: Vec<String>,
    /// May skip the consent page.
    pub first_party: bool,
}

/// What an admin asks for when replacing a client's secret (CONTRACT: client credential hygiene).
#[derive(Debug, Clone, Copy, Default)]
pub struct NewSecret {
    /// Seconds the old secret keeps working beside the new one: 0 to [`MAX_OVERLAP`].
    pub previous_valid_for: i64,
    /// Seconds; keeps the client's own max age when `None`.
    pub secret_max_age: Option<i64>,
}

/// The longest overlap of an old secret with its replacement: a week.
pub const MAX_OVERLAP: i64 = 604_800;

/// A client's own secret lifetime: the range of `TESSERA_CLIENT_SECRET_MAX_AGE`.
const MIN_SECRET_MAX_AGE: i64 = 60;
const MAX_SECRET_MAX_AGE: i64 = u32::MAX as i64;

fn secret_max_age(seconds: Option<i64>) -> Result<Option<std::time::Duration>, Error> {
    match seconds {
        None => Ok(None),
        Some(s) if (MIN_SECRET_MAX_AGE..=MAX_SECRET_MAX_AGE).contains(&s) => {
            Ok(Some(std::time::Duration::from_secs(s.unsigned_abs())))
        }
        Some(_) => Err(field(
            "secret_max_age",
            "a whole number of seconds from 60 to 4294967295",
        )),
    }
}

/// The most redirect URIs a client may register, and the longest one.
const MAX_REDIRECT_URIS: usize = 20;
const MAX_REDIRECT_URI_BYTES: usize = 2000;

/// CONTRACT (browser sign-in), RFC 9700 §2.1, §4.1.3, RFC 8252 §7: absolute URIs compared as
/// exact strings, so no wildcard and no fragment (RFC 6749 §3.1.2); `https`, or `http` only to
/// the loopback addresses 127.0.0.1 and [::1] (whose port may then differ), or a native app's
/// private-use scheme in reverse domain name form (RFC 8252 §7.1: one with a dot).
fn check_redirect_uris(uris: &[String]) -> Result<(), Error> {
    const RULE: &str = "each must be an absolute https URI, http://127.0.0.1 or http://[::1] (any port), or a private-use scheme with a dot (com.example.app:/cb), without fragment, wildcard or user info, at most 2000 bytes";
    if uris.len() > MAX_REDIRECT_URIS {
        return Err(field("redirect_uris", "at most 20"));
    }
    for uri in uris {
        let parsed = url::Url::parse(uri).map_err(|_| field("redirect_uris", RULE))?;
        let scheme_ok = match parsed.scheme() {
            "https" => parsed.host().is_some(),
            "http" => crate::model::is_loopback_http(&parsed),
            other => other.contains('.'),
        };
        let clean = uri.len() <= MAX_REDIRECT_URI_BYTES
            && !uri.contains('#')
            && !uri.contains('*')
            && !uri.chars().any(|c| c.is_whitespace() || c.is_control())
            && parsed.username().is_empty()
            && parsed.password().is_none();
        if !scheme_ok || !clean {
            return Err(field("redirect_uris", RULE));
        }
    }
    Ok(())
}

/// A client allowed the authorization_code grant must have somewhere to send the code.
fn check_code_client(grants: &[GrantType], redirect_uris: &[String]) -> Result<(), Error> {
    if grants.contains(&GrantType::AuthorizationCode) && redirect_uris.is_empty() {
        return Err(field(
            "redirect_uris",
            "at least one is required with the authorization_code grant",
        ));
    }
    Ok(())
}

/// Shortest password accepted (CONTRACT: POST /admin/users); longest, to bound hashing work.
const MIN_PASSWORD_CHARS: usize = 8;
const MAX_PASSWORD_BYTES: usize = 1024;

fn field(name: &'static str, message: &str) -> Error {
    Error::invalid_request(format!("{name}: {message}"))
}

/// Client ids travel in forms and Basic credentials: RFC 3986 unreserved characters only.
fn valid_client_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

impl Issuer {
    /// Registers a client; a confidential one gets a generated secret, returned once.
    pub async fn create_client(
        &self,
        actor: &str,
        request: NewClient,
        source_addr: Option<IpAddr>,
    ) -> Result<(Client, Option<ClientSecret>), Error> {
        let client_id = match request.client_id {
            Some(id) if valid_client_id(&id) => id,
            Some(_) => {
                return Err(field(
                    "client_id",
                    "1 to 128 characters of A-Z a-z 0-9 - . _ ~",
                ));
            }
            None => format!("cl_{}", base64url(&random_bytes::<12>())),
        };
        if request
            .name
            .as_ref()
            .is_some_and(|n| n.chars().count() > 200)
        {
            return Err(field("name", "at most 200 characters"));
        }
        let mut grant_types = Vec::new();
        for grant in &request.grant_types {
            let parsed = GrantType::parse(grant).ok_or_else(|| {
                field(
                    "grant_types",
                    "each must be authorization_code, client_credentials, password or refresh_token",
                )
            })?;
            if !grant_types.contains(&parsed) {
                grant_types.push(parsed);
            }
        }
        if grant_types.is_empty() {
            return Err(field("grant_types", "at least one grant type is required"));
        }
        if request.public && grant_types.contains(&GrantType::ClientCredentials) {
            return Err(field(
                "grant_types",
                "a public client cannot use client_credentials",
            ));
        }
        if request.public && request.introspect {
            return Err(field(
                "introspect",
                "a client that introspects must be confidential",
            ));
        }
        if request.public && request.admin {
            return Err(field("admin", "an admin client must be confidential"));
        }
        if request.scopes.iter().any(|s| !is_scope_token(s)) {
            return Err(field(
                "scopes",
                "each must be a scope token (RFC 6749 §3.3): printable ASCII without spaces, quotes or backslashes",
            ));
        }
        let max_age = secret_max_age(request.secret_max_age)?;
        if request.public && max_age.is_some() {
            return Err(field("secret_max_age", "a public client has no secret"));
        }
        if request.audiences.is_empty() {
            return Err(field("audiences", "at least one audience is required"));
        }
        if request
            .audiences
            .iter()
            .any(|a| a.is_empty() || a.len() > 512 || a.chars().any(char::is_whitespace))
        {
            return Err(field(
                "audiences",
                "each must be 1 to 512 characters without spaces",
            ));
        }
        check_redirect_uris(&request.redirect_uris)?;
        check_code_client(&grant_types, &request.redirect_uris)?;
        let secret = (!request.public).then(ClientSecret::generate);
        let now = self.clock.now();
        let client = Client {
            client_id,
            name: request.name,
            secret: secret.as_ref().map_or(ClientSecretHash::None, |s| {
                ClientSecretHash::Digest(s.digest())
            }),
            grant_types,
            scopes: dedup(request.scopes),
            audiences: dedup(request.audiences),
            is_admin: request.admin,
            can_introspect: request.introspect,
            disabled: false,
            created_at: now,
            updated_at: now,
            secret_created_at: secret.is_some().then_some(now),
            secret_max_age: max_age,
            previous_secret: None,
            redirect_uris: dedup(request.redirect_uris),
            first_party: request.first_party,
        };
        self.store.add_client(&client).await.map_err(|e| match e {
            StoreError::Conflict => Error::Conflict("a client with this client_id exists".into()),
            other => other.into(),
        })?;
        self.refresh_after_write().await;
        tracing::info!(client_id = %client.client_id, admin = client.is_admin, "client created");
        self.record(self.admin_audit(
            "client_created",
            actor,
            None,
            Some(&client.client_id),
            serde_json::json!({
                "grant_types": client.grant_types.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
                "admin": client.is_admin,
                "introspect": client.can_introspect,
                "secret_max_age": client.secret_max_age.map(|a| a.as_secs()),
                "redirect_uris": client.redirect_uris,
                "first_party": client.first_party,
            }),
            source_addr,
        ))
        .await;
        Ok((client, secret))
    }

    pub async fn client(&self, client_id: &str) -> Result<Client, Error> {
        // No client has an id outside the allowed characters: nothing to look up.
        if !valid_client_id(client_id) {
            return Err(Error::NotFound("client"));
        }
        self.store
            .find_client(client_id)
            .await?
            .ok_or(Error::NotFound("client"))
    }

    /// A new generated secret, shown once. The old one keeps working for `previous_valid_for`
    /// seconds (0: it stops at once), but never past its own expiry; rotating again during an
    /// overlap replaces the previous secret, so at most two work at any time. Every instance
    /// applies it within the feed bound.
    pub async fn rotate_client_secret(
        &self,
        actor: &str,
        client_id: &str,
        request: NewSecret,
        source_addr: Option<IpAddr>,
    ) -> Result<ClientSecret, Error> {
        if !(0..=MAX_OVERLAP).contains(&request.previous_valid_for) {
            return Err(field(
                "previous_valid_for",
                "a whole number of seconds from 0 to 604800",
            ));
        }
        let max_age = secret_max_age(request.secret_max_age)?;
        let client = self.client(client_id).await?;
        if client.is_public() {
            return Err(Error::invalid_request("a public client has no secret"));
        }
        let now = self.clock.now();
        let previous_expires_at = (request.previous_valid_for > 0).then(|| {
            let overlap_end = now + time::Duration::seconds(request.previous_valid_for);
            client
                .secret_expires_at(self.policy.client_secret_max_age)
                .map_or(overlap_end, |own| own.min(overlap_end))
        });
        let secret = ClientSecret::generate();
        let digest = ClientSecretHash::Digest(secret.digest());
        let rotation = SecretRotation {
            secret: &digest,
            previous_expires_at,
            secret_max_age: max_age,
        };
        if self
            .store
            .update_client_secret(client_id, &rotation, now)
            .await?
            == crate::store::Update::NotFound
        {
            return Err(Error::NotFound("client"));
        }
        self.refresh_after_write().await;
        tracing::info!(%client_id, previous_valid_for = request.previous_valid_for, "client secret rotated");
        self.record(self.admin_audit(
            "client_secret_rotated",
            actor,
            None,
            Some(client_id),
            serde_json::json!({
                "previous_valid_for": request.previous_valid_for,
                "secret_max_age": max_age.map(|a| a.as_secs()),
            }),
            source_addr,
        ))
        .await;
        Ok(secret)
    }

    /// Disables a client (it can no longer authenticate; what it holds stays valid unless
    /// revoked) or enables it again. The last enabled admin client cannot be disabled.
    pub async fn set_client_disabled(
        &self,
        actor: &str,
        client_id: &str,
        disabled: bool,
        source_addr: Option<IpAddr>,
    ) -> Result<Client, Error> {
        let change = ClientChange {
            disabled: Some(disabled),
            ..ClientChange::default()
        };
        self.update_client(actor, client_id, change, source_addr)
            .await
    }

    /// PATCH /admin/clients/{id}: each part given, everything validated before anything is
    /// written (the redirect URIs as at registration), then written in one transaction with
    /// its audit events (`client_updated`, then `client_disabled` or `client_enabled`).
    pub async fn update_client(
        &self,
        actor: &str,
        client_id: &str,
        mut change: ClientChange,
        source_addr: Option<IpAddr>,
    ) -> Result<Client, Error> {
        if change.disabled.is_none()
            && change.redirect_uris.is_none()
            && change.first_party.is_none()
        {
            return Err(Error::invalid_request(
                "give disabled, redirect_uris or first_party",
            ));
        }
        let client = self.client(client_id).await?;
        if let Some(uris) = change.redirect_uris.take() {
            check_redirect_uris(&uris)?;
            check_code_client(&client.grant_types, &uris)?;
            change.redirect_uris = Some(dedup(uris));
        }
        if change.disabled == Some(true) {
            self.ensure_admin_may_disable(actor, &client).await?;
        }
        let mut events = Vec::new();
        if change.redirect_uris.is_some() || change.first_party.is_some() {
            let detail = serde_json::json!({
                "redirect_uris": change.redirect_uris,
                "first_party": change.first_party,
            });
            events.push(self.admin_audit(
                "client_updated",
                actor,
                None,
                Some(client_id),
                detail,
                source_addr,
            ));
        }
        if let Some(disabled) = change.disabled {
            let event_type = if disabled {
                "client_disabled"
            } else {
                "client_enabled"
            };
            let detail = serde_json::json!({});
            events.push(self.admin_audit(
                event_type,
                actor,
                None,
                Some(client_id),
                detail,
                source_addr,
            ));
        }
        if self
            .store
            .update_client(client_id, &change, &events, self.clock.now())
            .await?
            == crate::store::Update::NotFound
        {
            return Err(Error::NotFound("client"));
        }
        self.refresh_after_write().await;
        self.client(client_id).await
    }

    /// Refuses to let an admin disable itself (another admin must). That the last enabled admin
    /// is never disabled (nobody could then use the admin API or revoke anything over HTTP) is
    /// checked by the store, in the disabling transaction with the admin rows locked, so two
    /// admins disabling each other at once cannot both succeed ([`StoreError::LastAdmin`]).
    pub(crate) async fn ensure_admin_may_disable(
        &self,
        actor: &str,
        client: &Client,
    ) -> Result<(), Error> {
        if actor == client.client_id {
            return Err(Error::Conflict(
                "an admin client cannot disable itself; another admin can".into(),
            ));
        }
        Ok(())
    }

    pub async fn create_user(
        &self,
        actor: &str,
        username: &str,
        password: &str,
        roles: &[String],
        source_addr: Option<IpAddr>,
    ) -> Result<User, Error> {
        let roles = super::roles::role_list(roles)?;
        let username = username.trim();
        if username.is_empty()
            || username.chars().count() > 128
            || username.chars().any(char::is_control)
        {
            return Err(field(
                "username",
                "1 to 128 characters, no control characters",
            ));
        }
        check_password(password)?;
        let phc = self.passwords.hash(password).await?;
        let now = self.clock.now();
        let user = User {
            user_id: uuid::Uuid::new_v4(),
            username: username.to_owned(),
            username_key: username_key(username),
            password_phc: phc,
            disabled: false,
            created_at: now,
            updated_at: now,
        };
        self.store
            .add_user(&user, &roles)
            .await
            .map_err(|e| match e {
                StoreError::Conflict => Error::Conflict("this username is taken".into()),
                other => other.into(),
            })?;
        tracing::info!(user_id = %user.user_id, "user created");
        self.record(self.admin_audit(
            "user_created",
            actor,
            Some(user.user_id.to_string()),
            None,
            serde_json::json!({"roles": roles}),
            source_addr,
        ))
        .await;
        Ok(user)
    }
}

/// What PATCH /admin/users/{id} changes; `None` leaves a part as it is.
#[derive(Default)]
pub struct UserChange<'a> {
    pub disabled: Option<bool>,
    pub password: Option<&'a str>,
    /// Replaces the set.
    pub roles: Option<&'a [String]>,
}

impl Issuer {
    pub async fn user(&self, user_id: &str) -> Result<User, Error> {
        let id = uuid::Uuid::parse_str(user_id).map_err(|_| Error::NotFound("user"))?;
        self.store
            .find_user(id)
            .await?
            .ok_or(Error::NotFound("user"))
    }

    /// Replaces the user's roles, enables, disables (revoking every session of the user) or
    /// sets a new password. Everything is validated first; the roles change first, so an unknown
    /// role changes nothing.
    pub async fn update_user(
        &self,
        actor: &str,
        user_id: &str,
        change: UserChange<'_>,
        source_addr: Option<IpAddr>,
    ) -> Result<User, Error> {
        let UserChange {
            disabled,
            password,
            roles,
        } = change;
        let id = uuid::Uuid::parse_str(user_id).map_err(|_| Error::NotFound("user"))?;
        let roles = roles.map(super::roles::role_list).transpose()?;
        if let Some(password) = password {
            check_password(password)?;
        }
        if let Some(roles) = &roles {
            self.set_user_roles(actor, id, roles, source_addr).await?;
            if disabled.is_none() && password.is_none() {
                return self.user(user_id).await;
            }
        }
        let phc = match password {
            Some(password) => {
                check_password(password)?;
                Some(self.passwords.hash(password).await?)
            }
            None => None,
        };
        let now = self.clock.now();
        // Enabling and the new password here; disabling below, in the same transaction as the
        // revocation of everything the user holds.
        let mut user = self
            .store
            .update_user(id, disabled.filter(|d| !*d), phc.as_deref(), now)
            .await?
            .ok_or(Error::NotFound("user"))?;
        let event_type = match disabled {
            Some(true) => "user_disabled",
            Some(false) => "user_enabled",
            None => "user_updated",
        };
        let detail = serde_json::json!({"password_changed": password.is_some()});
        let event = crate::model::AuditEvent {
            event_type,
            actor: Some(actor.to_owned()),
            subject: Some(user.user_id.to_string()),
            client_id: None,
            session_id: None,
            source_addr: source_addr.map(|ip| ip.to_string()),
            detail,
            created_at: now,
        };
        // Disabling, or a new password (a reset after a compromise), ends every session and
        // every access token of the user, on every instance, like an offboarding.
        if disabled == Some(true) || password.is_some() {
            let cutoff_expires_at = now + self.policy.access_token_ttl + super::keys::CLOCK_SKEW;
            let user_id = user.user_id.to_string();
            self.store
                .revoke_principal(
                    crate::model::RevocationKind::Subject,
                    &user_id,
                    disabled == Some(true),
                    now,
                    cutoff_expires_at,
                    &event,
                )
                .await?;
            metrics::counter!(crate::metrics::REVOCATIONS, "selector" => "subject").increment(1);
            self.sync_revocations().await?;
            user.disabled |= disabled == Some(true);
        } else {
            self.record(event).await;
        }
        tracing::info!(user_id = %user.user_id, disabled = user.disabled, "user updated");
        Ok(user)
    }

    /// Finds a user by name (for the CLI).
    pub async fn user_by_name(&self, username: &str) -> Result<User, Error> {
        self.store
            .find_user_by_username_key(&username_key(username))
            .await?
            .ok_or(Error::NotFound("user"))
    }

    /// The configured bootstrap admin is created if missing (its operator-chosen secret is
    /// hashed with argon2id). With none configured and no admin at all, `generate` creates one
    /// with a generated secret and returns it, to be shown once.
    pub async fn ensure_admin(
        &self,
        configured: Option<(&str, &str)>,
        generate: bool,
    ) -> Result<Option<(String, ClientSecret)>, Error> {
        if let Some((id, secret)) = configured {
            if self.clients.get(id).is_some() {
                return Ok(None);
            }
            let phc = self.passwords.hash(secret).await?;
            let now = self.clock.now();
            let client = Client {
                client_id: id.to_owned(),
                name: Some("bootstrap admin".into()),
                secret: ClientSecretHash::Phc(phc),
                grant_types: vec![GrantType::ClientCredentials],
                scopes: Vec::new(),
                audiences: vec![self.issuer.clone()],
                is_admin: true,
                can_introspect: true,
                disabled: false,
                created_at: now,
                updated_at: now,
                secret_created_at: Some(now),
                secret_max_age: None,
                previous_secret: None,
                redirect_uris: Vec::new(),
                first_party: false,
            };
            match self.store.add_client(&client).await {
                Ok(()) | Err(StoreError::Conflict) => {}
                Err(other) => return Err(other.into()),
            }
            self.refresh_after_write().await;
            tracing::info!(client_id = %id, "bootstrap admin client created");
            return Ok(None);
        }
        if !generate || self.clients.any_admin() {
            return Ok(None);
        }
        let (client, secret) = self
            .create_client(
                "bootstrap",
                NewClient {
                    client_id: Some("admin".into()),
                    name: Some("generated admin".into()),
                    grant_types: vec!["client_credentials".into()],
                    audiences: vec![self.issuer.clone()],
                    admin: true,
                    introspect: true,
                    ..NewClient::default()
                },
                None,
            )
            .await?;
        Ok(secret.map(|s| (client.client_id, s)))
    }

    pub fn registry(&self) -> &super::ClientRegistry {
        &self.clients
    }
}

impl Issuer {
    /// Rotates the signing key on an admin's request, and records it.
    pub async fn rotate_keys(
        &self,
        actor: &str,
        force: bool,
        source_addr: Option<IpAddr>,
    ) -> Result<String, Error> {
        let kid = self.keys.rotate(force).await?;
        self.record(self.admin_audit(
            "key_rotated",
            actor,
            None,
            None,
            serde_json::json!({"kid": kid}),
            source_addr,
        ))
        .await;
        Ok(kid)
    }

    /// An admin's audit event: recorded after the change ([`Issuer::record`]), or by the store in
    /// the change's own transaction.
    pub(crate) fn admin_audit(
        &self,
        event_type: &'static str,
        actor: &str,
        subject: Option<String>,
        client_id: Option<&str>,
        detail: serde_json::Value,
        source_addr: Option<IpAddr>,
    ) -> crate::model::AuditEvent {
        crate::model::AuditEvent {
            event_type,
            actor: Some(actor.to_owned()),
            subject,
            client_id: client_id.map(str::to_owned),
            session_id: None,
            source_addr: source_addr.map(|ip| ip.to_string()),
            detail,
            created_at: self.clock.now(),
        }
    }
}

fn check_password(password: &str) -> Result<(), Error> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(field("password", "at least 8 characters"));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(field("password", "at most 1024 bytes"));
    }
    Ok(())
}

fn dedup(items: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_1_to_128_unreserved_characters() {
        for id in ["a", "web", "cl_AbC-09.~", &"x".repeat(128)] {
            assert!(valid_client_id(id), "{id:?}");
        }
        let too_long = "x".repeat(129);
        for id in [
            "",
            too_long.as_str(),
            "with space",
            "a/b",
            "a:b",
            "a%20b",
            "a+b",
            "é",
            "a\u{0}b",
            "a@b",
        ] {
            assert!(!valid_client_id(id), "{id:?}");
        }
    }

    #[test]
    fn redirect_uris_are_exact_absolute_and_https_or_loopback() {
        let uris = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        for ok in [
            "https://app.example.com/callback",
            "https://app.example.com/cb?x=1",
            "http://127.0.0.1/cb",
            "http://127.0.0.1:8080/cb",
            "http://[::1]:53000/",
            "com.example.app:/oauth2redirect",
        ] {
            assert!(check_redirect_uris(&uris(&[ok])).is_ok(), "{ok:?}");
        }
        for bad in [
            "https://app.example.com/cb#frag",
            "https://*.example.com/cb",
            "https://app.example.com/*",
            "http://app.example.com/cb",
            "http://localhost:8080/cb",
            "http://127.0.0.2/cb",
            "/relative/cb",
            "app.example.com/cb",
            "javascript:alert(1)",
            "data:text/html,hi",
            "https://user:pw@app.example.com/cb",
            "https://app.example.com/c b",
            "",
        ] {
            assert!(check_redirect_uris(&uris(&[bad])).is_err(), "{bad:?}");
        }
        assert!(check_redirect_uris(&vec!["https://a.example/".to_owned(); 21]).is_err());
        let code = [GrantType::AuthorizationCode];
        assert!(check_code_client(&code, &[]).is_err());
        assert!(check_code_client(&code, &uris(&["https://a.example/"])).is_ok());
        assert!(check_code_client(&[GrantType::Password], &[]).is_ok());
    }

    #[test]
    fn passwords_are_8_characters_to_1024_bytes() {
        assert!(check_password("1234567").is_err());
        assert!(check_password("12345678").is_ok());
        assert!(check_password("").is_err());
        // Characters are counted, not bytes: seven two-byte characters are too few...
        assert!(check_password(&"é".repeat(7)).is_err());
        // ...and eight are enough.
        assert!(check_password(&"é".repeat(8)).is_ok());
        // The upper bound is in bytes, so hashing work stays bounded.
        assert!(check_password(&"a".repeat(1024)).is_ok());
        assert!(check_password(&"a".repeat(1025)).is_err());
        assert!(check_password(&"é".repeat(512)).is_ok());
        assert!(check_password(&format!("{}a", "é".repeat(512))).is_err());
    }

    #[test]
    fn a_refused_password_names_the_field_and_the_rule() {
        let short = check_password("short").unwrap_err();
        assert!(
            matches!(&short, Error::InvalidRequest(text) if text == "password: at least 8 characters"),
            "{short:?}"
        );
        let long = check_password(&"a".repeat(2000)).unwrap_err();
        assert!(
            matches!(&long, Error::InvalidRequest(text) if text == "password: at most 1024 bytes"),
            "{long:?}"
        );
    }

    #[test]
    fn duplicates_collapse_keeping_the_first_order() {
        let items = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            dedup(items(&["write", "read", "write", "admin", "read"])),
            items(&["write", "read", "admin"])
        );
        assert_eq!(dedup(Vec::new()), Vec::<String>::new());
        // Exact comparison: case and spelling variants are distinct entries.
        assert_eq!(dedup(items(&["Read", "read"])), items(&["Read", "read"]));
    }
}
