//! Roles and least privilege: named scope sets, the roles each user holds, and the revocation a lost scope causes (CONTRACT: Roles and least privilege). Uses: store, clock, model.
//!
//! A role edit must stay cheap whatever the number of users holding the role: it writes the role
//! row and one revocation entry. A user's access token names the roles that granted its scopes
//! in its `roles` claim (RFC 9068 §2.2.3.1), so the entry `(role, lost scopes, cut-off)` reaches
//! every token that relied on the role without listing users or tokens. A token that holds a
//! lost scope through a second role as well is cut off too (the entry cannot know which users
//! still hold the scope); its session's next refresh gets back what the user still holds.

use std::net::IpAddr;

use super::token::is_scope_token;
use super::{Error, Issuer};
use crate::model::{AuditEvent, RevocationKind, Role, is_role_name};
use crate::store::RoleWrite;

/// Most scopes in one role, and most roles given to one user: bounds the work of a request.
const MAX_SCOPES: usize = 256;
const MAX_ROLES: usize = 64;
/// Longest description, in characters.
const MAX_DESCRIPTION: usize = 1024;

/// Validates the roles given to a user: names only, without duplicates.
pub fn role_list(roles: &[String]) -> Result<Vec<String>, Error> {
    if roles.len() > MAX_ROLES {
        return Err(Error::invalid_request(format!(
            "roles: at most {MAX_ROLES} roles"
        )));
    }
    let mut list: Vec<String> = Vec::with_capacity(roles.len());
    for name in roles {
        if !is_role_name(name) {
            return Err(Error::invalid_request(
                "roles: a role name is 1 to 64 of A-Z a-z 0-9 _ . : -",
            ));
        }
        if !list.contains(name) {
            list.push(name.clone());
        }
    }
    Ok(list)
}

fn check_name(name: &str) -> Result<(), Error> {
    if is_role_name(name) {
        Ok(())
    } else {
        Err(Error::invalid_request(
            "name: a role name is 1 to 64 of A-Z a-z 0-9 _ . : -",
        ))
    }
}

impl Issuer {
    /// Creates or replaces a role. Scopes it no longer grants are cut off from every token
    /// that relied on it; its holders' sessions stay and narrow at their next refresh.
    /// Returns the role and whether it was created.
    pub async fn put_role(
        &self,
        actor: &str,
        name: &str,
        scopes: &[String],
        description: Option<&str>,
        source_addr: Option<IpAddr>,
    ) -> Result<(Role, bool), Error> {
        check_name(name)?;
        if scopes.len() > MAX_SCOPES {
            return Err(Error::invalid_request(format!(
                "scopes: at most {MAX_SCOPES} scopes"
            )));
        }
        let mut distinct: Vec<String> = Vec::with_capacity(scopes.len());
        for scope in scopes {
            if !is_scope_token(scope) {
                return Err(Error::invalid_request(
                    "scopes: each must be an RFC 6749 scope-token (printable ASCII, no space, quote or backslash)",
                ));
            }
            if !distinct.contains(scope) {
                distinct.push(scope.clone());
            }
        }
        if description
            .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION || d.chars().any(char::is_control))
        {
            return Err(Error::invalid_request(format!(
                "description: at most {MAX_DESCRIPTION} characters, no control characters"
            )));
        }
        let now = self.clock.now();
        let role = Role {
            name: name.to_owned(),
            scopes: distinct,
            description: description.map(str::to_owned),
            created_at: now,
            updated_at: now,
        };
        let event = self.role_event(
            "role_changed",
            actor,
            None,
            serde_json::json!({"role": name, "scopes": role.scopes}),
            source_addr,
        );
        let written = self
            .store
            .put_role(&role, now, self.scope_cutoff_expiry(now), &event)
            .await?;
        tracing::info!(role = name, lost = written.lost.len(), "role written");
        self.after_scope_change(RevocationKind::Role, name, &written)
            .await?;
        let stored = self
            .store
            .find_role(name)
            .await?
            .ok_or(Error::NotFound("role"))?;
        Ok((stored, written.created))
    }

    pub async fn role(&self, name: &str) -> Result<Role, Error> {
        if !is_role_name(name) {
            return Err(Error::NotFound("role"));
        }
        self.store
            .find_role(name)
            .await?
            .ok_or(Error::NotFound("role"))
    }

    pub async fn roles(&self) -> Result<Vec<Role>, Error> {
        Ok(self.store.list_roles().await?)
    }

    /// Deletes a role: its holders lose it, and every token that relied on it loses the
    /// scopes it granted.
    pub async fn delete_role(
        &self,
        actor: &str,
        name: &str,
        source_addr: Option<IpAddr>,
    ) -> Result<(), Error> {
        if !is_role_name(name) {
            return Err(Error::NotFound("role"));
        }
        let now = self.clock.now();
        let event = self.role_event(
            "role_changed",
            actor,
            None,
            serde_json::json!({"role": name, "deleted": true}),
            source_addr,
        );
        let written = self
            .store
            .delete_role(name, now, self.scope_cutoff_expiry(now), &event)
            .await?
            .ok_or(Error::NotFound("role"))?;
        tracing::info!(role = name, "role deleted");
        self.after_scope_change(RevocationKind::Role, name, &written)
            .await
    }

    /// Replaces the roles a user holds. Scopes the user no longer holds are cut off from its
    /// tokens; its sessions stay and narrow at their next refresh.
    pub async fn set_user_roles(
        &self,
        actor: &str,
        user_id: uuid::Uuid,
        roles: &[String],
        source_addr: Option<IpAddr>,
    ) -> Result<(), Error> {
        let roles = role_list(roles)?;
        let now = self.clock.now();
        let event = self.role_event(
            "user_roles_changed",
            actor,
            Some(user_id.to_string()),
            serde_json::json!({"roles": roles}),
            source_addr,
        );
        let lost = self
            .store
            .set_user_roles(user_id, &roles, now, self.scope_cutoff_expiry(now), &event)
            .await?
            .ok_or(Error::NotFound("user"))?;
        tracing::info!(user_id = %user_id, lost = lost.len(), "user roles changed");
        let written = RoleWrite {
            created: false,
            held: true,
            lost,
        };
        self.after_scope_change(RevocationKind::SubjectScope, &user_id.to_string(), &written)
            .await
    }

    /// The names of the roles a user holds.
    pub async fn user_roles(&self, user_id: uuid::Uuid) -> Result<Vec<String>, Error> {
        let held = self.store.held_roles(user_id).await?;
        Ok(held.names().map(str::to_owned).collect())
    }

    /// Until when a scope cut-off can match a live token.
    fn scope_cutoff_expiry(&self, now: time::OffsetDateTime) -> time::OffsetDateTime {
        now + self.policy.access_token_ttl + super::keys::CLOCK_SKEW
    }

    /// After a change that took scopes away has committed: the cut-off again, now (a token
    /// minted from the old scopes while the change committed was issued before this), counted,
    /// and applied here at once.
    async fn after_scope_change(
        &self,
        kind: RevocationKind,
        value: &str,
        written: &RoleWrite,
    ) -> Result<(), Error> {
        if written.lost.is_empty() {
            return Ok(());
        }
        let now = self.clock.now();
        self.store
            .renew_scope_cutoff(
                kind,
                value,
                &written.lost,
                now,
                self.scope_cutoff_expiry(now),
            )
            .await?;
        if written.held {
            metrics::counter!(crate::metrics::REVOCATIONS, "selector" => "role").increment(1);
        }
        self.sync_revocations().await
    }

    fn role_event(
        &self,
        event_type: &'static str,
        actor: &str,
        subject: Option<String>,
        detail: serde_json::Value,
        source_addr: Option<IpAddr>,
    ) -> AuditEvent {
        AuditEvent {
            event_type,
            actor: Some(actor.to_owned()),
            subject,
            client_id: None,
            session_id: None,
            source_addr: source_addr.map(|ip| ip.to_string()),
            detail,
            created_at: self.clock.now(),
        }
    }
}
