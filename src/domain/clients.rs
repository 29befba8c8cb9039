//! The client registry: every client in memory, reloaded through the change feed, and client authentication (RFC 6749 §2.3) without a database round trip. Uses: store, crypto, model.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use secrecy::{ExposeSecret, SecretString};

use super::throttle::{Principal, Verdict};
use super::{Error, Issuer};
use crate::crypto::secrets::digest_matches;
use crate::model::{Client, ClientSecretHash};
use crate::store::{Store, StoreError};

/// How the client presented itself (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// `client_secret_basic`: the Authorization header.
    Basic,
    /// `client_secret_post`: `client_id` and `client_secret` in the form.
    Post,
    /// A public client: `client_id` only.
    None,
}

/// Credentials as presented; the secret never prints.
#[derive(Debug)]
pub struct ClientCredentials {
    pub client_id: String,
    pub secret: Option<SecretString>,
    pub method: AuthMethod,
}

/// Every client by id, as loaded at one feed version.
type ClientMap = Arc<HashMap<String, Arc<Client>>>;

pub struct ClientRegistry {
    clients: RwLock<(i64, ClientMap)>,
}

impl ClientRegistry {
    pub async fn load(store: &dyn Store, version: i64) -> Result<Self, StoreError> {
        let registry = Self {
            clients: RwLock::new((-1, Arc::new(HashMap::new()))),
        };
        registry.reload(store, version).await?;
        Ok(registry)
    }

    pub fn get(&self, client_id: &str) -> Option<Arc<Client>> {
        self.clients
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .get(client_id)
            .cloned()
    }

    /// Every client, as loaded.
    pub fn all(&self) -> ClientMap {
        Arc::clone(&self.clients.read().unwrap_or_else(|p| p.into_inner()).1)
    }

    pub fn version(&self) -> i64 {
        self.clients.read().unwrap_or_else(|p| p.into_inner()).0
    }

    /// Every scope some client may request, sorted (RFC 8414 `scopes_supported`).
    pub fn scopes(&self) -> Vec<String> {
        let clients = Arc::clone(&self.clients.read().unwrap_or_else(|p| p.into_inner()).1);
        let mut scopes: Vec<String> = clients
            .values()
            .flat_map(|c| c.scopes.iter().cloned())
            .collect();
        scopes.sort();
        scopes.dedup();
        scopes
    }

    pub fn any_admin(&self) -> bool {
        self.clients
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .values()
            .any(|c| c.is_admin)
    }

    /// Loads every client; `version` is the feed version read before the load.
    pub async fn reload(&self, store: &dyn Store, version: i64) -> Result<(), StoreError> {
        let clients = store
            .list_clients()
            .await?
            .into_iter()
            .map(|c| (c.client_id.clone(), Arc::new(c)))
            .collect();
        *self.clients.write().unwrap_or_else(|p| p.into_inner()) = (version, Arc::new(clients));
        Ok(())
    }
}

impl Issuer {
    /// Authenticates a client (RFC 6749 §2.3). Unknown, disabled, wrong secret and a public
    /// client sending a secret are all `invalid_client`; repeated failures are throttled. During
    /// a rotation's overlap the previous secret works too. The right secret past its expiry is
    /// `invalid_client` saying so.
    ///
    /// The client id presented is recorded on the current span (the request's): every later
    /// line of the request carries it, without a span of its own per step.
    pub async fn authenticate_client(
        &self,
        credentials: &ClientCredentials,
        source_addr: Option<IpAddr>,
    ) -> Result<Arc<Client>, Error> {
        tracing::Span::current().record("client_id", credentials.client_id.as_str());
        let Some(client) = self.clients.get(&credentials.client_id) else {
            metrics::counter!(crate::metrics::CREDENTIAL_CACHE, "result" => "miss").increment(1);
            return Err(Error::InvalidClient);
        };
        metrics::counter!(crate::metrics::CREDENTIAL_CACHE, "result" => "hit").increment(1);
        let now = self.clock.now();
        let previous = client
            .previous_secret
            .as_ref()
            .filter(|p| now < p.expires_at)
            .map(|p| &p.secret);
        // Only an operator-chosen (argon2id) secret can be guessed, so only such a client is
        // throttled, and the attempt is counted before it is verified. Throttling a 256-bit
        // generated secret would protect nothing and hand anyone who knows a client id (it is
        // in every token) a way to lock that client out.
        let guessable = [Some(&client.secret), previous]
            .into_iter()
            .flatten()
            .any(|s| matches!(s, ClientSecretHash::Phc(_)));
        let attempt = match guessable {
            true => Some(
                self.throttle
                    .reserve(Principal::Client(&credentials.client_id), source_addr)
                    .await?,
            ),
            false => None,
        };
        let presented = credentials.secret.as_ref().map(|s| s.expose_secret());
        // Both secrets are always checked, so the time taken does not say which one matched.
        let current = self.secret_matches(&client.secret, presented).await;
        let old = match previous {
            Some(previous) if presented.is_some() => self.secret_matches(previous, presented).await,
            _ => Ok(false),
        };
        let matched = match (current, old) {
            (Ok(current), Ok(old)) => Ok((current, old)),
            (Err(e), _) | (_, Err(e)) => Err(e),
        };
        if let Some(attempt) = attempt {
            let verdict = match matched {
                Ok((false, false)) => Verdict::Failed,
                Ok(_) => Verdict::Succeeded,
                Err(_) => Verdict::Unverified,
            };
            self.throttle.settle(attempt, verdict).await;
        }
        let (current, old) = matched?;
        if !(current || old) {
            tracing::info!("client authentication failed");
            return Err(Error::InvalidClient);
        }
        if client.disabled {
            return Err(Error::InvalidClient);
        }
        // The previous secret is only ever accepted before its own (earlier) end.
        if !old && self.secret_expires_at(&client).is_some_and(|at| at <= now) {
            tracing::info!("client authentication with an expired secret");
            return Err(Error::ClientSecretExpired);
        }
        self.usage.used(&client.client_id, now);
        Ok(client)
    }

    /// Whether `presented` is this secret; a public client "matches" only when nothing is
    /// presented. Constant-time for digests.
    async fn secret_matches(
        &self,
        secret: &ClientSecretHash,
        presented: Option<&str>,
    ) -> Result<bool, Error> {
        match (secret, presented) {
            (ClientSecretHash::None, None) => Ok(true),
            (ClientSecretHash::Digest(digest), Some(secret)) => Ok(digest_matches(secret, digest)),
            (ClientSecretHash::Phc(phc), Some(secret)) => {
                self.passwords.verify(Some(phc), secret).await
            }
            _ => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::GrantType;

    fn client(client_id: &str, scopes: &[&str], is_admin: bool) -> Client {
        let now = time::OffsetDateTime::UNIX_EPOCH;
        Client {
            client_id: client_id.into(),
            name: None,
            secret: ClientSecretHash::Digest([7; 32]),
            grant_types: vec![GrantType::ClientCredentials],
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            audiences: vec!["https://api".into()],
            is_admin,
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

    fn registry(version: i64, clients: Vec<Client>) -> ClientRegistry {
        let map = clients
            .into_iter()
            .map(|c| (c.client_id.clone(), Arc::new(c)))
            .collect();
        ClientRegistry {
            clients: RwLock::new((version, Arc::new(map))),
        }
    }

    #[test]
    fn scopes_supported_are_every_clients_scopes_sorted_once() {
        let registry = registry(
            3,
            vec![
                client("a", &["write", "read"], false),
                client("b", &["read", "admin:keys"], true),
                client("c", &[], false),
            ],
        );
        assert_eq!(registry.scopes(), ["admin:keys", "read", "write"]);
        assert!(registry_without_clients().scopes().is_empty());
    }

    fn registry_without_clients() -> ClientRegistry {
        registry(0, Vec::new())
    }

    #[test]
    fn clients_are_found_by_exact_id() {
        let registry = registry(7, vec![client("web", &["read"], false)]);
        assert_eq!(registry.get("web").unwrap().client_id, "web");
        assert!(registry.get("WEB").is_none());
        assert!(registry.get("").is_none());
        assert_eq!(registry.version(), 7);
    }

    #[test]
    fn an_admin_is_any_client_flagged_admin() {
        assert!(!registry_without_clients().any_admin());
        assert!(!registry(1, vec![client("web", &[], false)]).any_admin());
        assert!(registry(1, vec![client("web", &[], false), client("ops", &[], true)]).any_admin());
    }
}
