//! Client credential hygiene: use recorded in memory and flushed in batches, the age and use of each client for the admin API, and the gauges operators alert on. Uses: store, clock, model.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use time::OffsetDateTime;

use super::{Error, Issuer};
use crate::model::{Client, ClientFilter, ClientUsage};

/// How often use is written: at most one write per client and instance in this time.
pub const USAGE_FLUSH_INTERVAL: Duration = Duration::from_secs(60);

/// A secret expiring within this is counted as expiring soon.
pub const EXPIRING_SOON: time::Duration = time::Duration::days(7);

/// A client unused this long is counted as unused.
pub const UNUSED_FOR: time::Duration = time::Duration::days(30);

/// Shards of the recorder: /token runs on every core, and each request touches one shard for a
/// few compares, never across an await.
const SHARDS: usize = 16;

/// Use since the last flush, by client id. Recording allocates only for a client or scope not
/// seen since then.
pub struct UsageRecorder {
    shards: [Mutex<HashMap<String, ClientUsage>>; SHARDS],
    hasher: RandomState,
}

impl Default for UsageRecorder {
    fn default() -> Self {
        Self {
            shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
            hasher: RandomState::new(),
        }
    }
}

impl UsageRecorder {
    fn with<R>(&self, client_id: &str, f: impl FnOnce(&mut ClientUsage) -> R) -> R {
        let shard = self.hasher.hash_one(client_id) as usize % SHARDS;
        let mut pending = self.shards[shard].lock().unwrap_or_else(|p| p.into_inner());
        match pending.get_mut(client_id) {
            Some(usage) => f(usage),
            None => f(pending.entry(client_id.to_owned()).or_default()),
        }
    }

    /// A successful authentication.
    pub fn used(&self, client_id: &str, at: OffsetDateTime) {
        self.with(client_id, |usage| usage.used(at));
    }

    /// An access token carrying `scope` (space-separated scope tokens).
    pub fn issued(&self, client_id: &str, scope: &str, at: OffsetDateTime) {
        self.with(client_id, |usage| {
            for token in scope.split(' ').filter(|t| !t.is_empty()) {
                usage.issued(token, at);
            }
        });
    }

    /// Everything recorded so far, leaving the recorder empty.
    pub fn take(&self) -> Vec<(String, ClientUsage)> {
        self.shards
            .iter()
            .flat_map(|shard| std::mem::take(&mut *shard.lock().unwrap_or_else(|p| p.into_inner())))
            .collect()
    }

    /// Puts back what a failed flush took, merged with what arrived meanwhile.
    pub fn restore(&self, taken: Vec<(String, ClientUsage)>) {
        for (client_id, usage) in taken {
            self.with(&client_id, |pending| pending.merge(&usage));
        }
    }
}

/// What the hygiene gauges last counted, refreshed by [`Issuer::run_usage`].
#[derive(Debug, Default)]
pub struct HygieneGauges {
    expiring_soon: AtomicU64,
    expired: AtomicU64,
    unused: AtomicU64,
}

/// The hygiene gauges of this instance (enabled clients only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HygieneCounts {
    /// A generated secret expiring within 7 days, not yet expired.
    pub secrets_expiring_soon: u64,
    /// A generated secret past its expiry: the client cannot authenticate.
    pub secrets_expired: u64,
    /// Not used (or, never used, created) for 30 days.
    pub unused: u64,
}

/// A client with its recorded use, as GET /admin/clients shows it.
#[derive(Debug, Clone)]
pub struct ClientDetails {
    pub client: Client,
    pub usage: ClientUsage,
    pub secret_expires_at: Option<OffsetDateTime>,
}

impl Issuer {
    /// When this client's current secret expires, under this instance's settings.
    pub fn secret_expires_at(&self, client: &Client) -> Option<OffsetDateTime> {
        client.secret_expires_at(self.policy.client_secret_max_age)
    }

    fn details(&self, client: Client, usage: ClientUsage) -> ClientDetails {
        ClientDetails {
            secret_expires_at: self.secret_expires_at(&client),
            client,
            usage,
        }
    }

    /// A client with its use as stored (to within a flush interval).
    pub async fn client_details(&self, client_id: &str) -> Result<ClientDetails, Error> {
        let client = self.client(client_id).await?;
        let usage = self
            .store
            .client_usage(Some(client_id))
            .await?
            .into_iter()
            .next()
            .map(|(_, usage)| usage)
            .unwrap_or_default();
        Ok(self.details(client, usage))
    }

    /// The clients unused for at least `unused_for` and whose secret is at least
    /// `secret_older_than` old (each only when given), by id.
    pub async fn find_clients(
        &self,
        unused_for: Option<Duration>,
        secret_older_than: Option<Duration>,
    ) -> Result<Vec<ClientDetails>, Error> {
        let now = self.clock.now();
        let filter = ClientFilter {
            unused_since: unused_for.map(|d| now - d),
            secret_created_before: secret_older_than.map(|d| now - d),
        };
        let clients = self.store.find_clients(&filter).await?;
        let mut usage: HashMap<String, ClientUsage> =
            self.store.client_usage(None).await?.into_iter().collect();
        Ok(clients
            .into_iter()
            .map(|client| {
                let used = usage.remove(&client.client_id).unwrap_or_default();
                self.details(client, used)
            })
            .collect())
    }

    /// Writes the use recorded since the last flush; on failure it is kept for the next one.
    /// Returns how many clients were written. Called every [`USAGE_FLUSH_INTERVAL`] by
    /// [`Issuer::run_usage`] and once more at shutdown.
    pub async fn flush_usage(&self) -> Result<usize, Error> {
        let taken = self.usage.take();
        if taken.is_empty() {
            return Ok(0);
        }
        match self.store.record_client_usage(&taken).await {
            Ok(()) => Ok(taken.len()),
            Err(error) => {
                self.usage.restore(taken);
                Err(error.into())
            }
        }
    }

    /// Recounts the hygiene gauges: expiry from the in-memory registry, disuse with one query.
    pub async fn refresh_hygiene_gauges(&self) -> Result<HygieneCounts, Error> {
        let now = self.clock.now();
        let (mut expiring_soon, mut expired) = (0, 0);
        for client in self.clients.all().values().filter(|c| !c.disabled) {
            match self.secret_expires_at(client) {
                Some(at) if at <= now => expired += 1,
                Some(at) if at <= now + EXPIRING_SOON => expiring_soon += 1,
                _ => {}
            }
        }
        let filter = ClientFilter {
            unused_since: Some(now - UNUSED_FOR),
            secret_created_before: None,
        };
        let unused = self
            .store
            .find_clients(&filter)
            .await?
            .iter()
            .filter(|c| !c.disabled)
            .count() as u64;
        let gauges = &self.hygiene;
        gauges.expiring_soon.store(expiring_soon, Ordering::Relaxed);
        gauges.expired.store(expired, Ordering::Relaxed);
        gauges.unused.store(unused, Ordering::Relaxed);
        Ok(self.hygiene_counts())
    }

    /// The gauges as last counted.
    pub fn hygiene_counts(&self) -> HygieneCounts {
        HygieneCounts {
            secrets_expiring_soon: self.hygiene.expiring_soon.load(Ordering::Relaxed),
            secrets_expired: self.hygiene.expired.load(Ordering::Relaxed),
            unused: self.hygiene.unused.load(Ordering::Relaxed),
        }
    }

    /// Every [`USAGE_FLUSH_INTERVAL`]: flushes recorded use, then recounts the gauges.
    pub async fn run_usage(self: std::sync::Arc<Self>) {
        let mut ticker = tokio::time::interval(USAGE_FLUSH_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if let Err(error) = self.flush_usage().await {
                tracing::warn!(%error, "recording client use failed; retrying at the next flush");
            }
            if let Err(error) = self.refresh_hygiene_gauges().await {
                tracing::warn!(%error, "counting client hygiene gauges failed");
            }
        }
    }

    /// At start-up: an enabled admin client whose generated secret has expired or expires
    /// within 7 days is logged, so an operator is not locked out silently (`tessera client
    /// rotate-secret` works on the database directly).
    pub fn warn_about_admin_secrets(&self) {
        let now = self.clock.now();
        for client in self
            .clients
            .all()
            .values()
            .filter(|c| c.is_admin && !c.disabled)
        {
            match self.secret_expires_at(client) {
                Some(at) if at <= now => {
                    tracing::warn!(client_id = %client.client_id, expired_at = %at, "an admin client's secret has expired: rotate it with `tessera client rotate-secret`")
                }
                Some(at) if at <= now + EXPIRING_SOON => {
                    tracing::warn!(client_id = %client.client_id, expires_at = %at, "an admin client's secret expires within 7 days")
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_use_is_merged_per_client_keeping_the_latest_time_and_taken_once() {
        let recorder = UsageRecorder::default();
        let t = |s| OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(s);
        recorder.used("a", t(5));
        recorder.used("a", t(3));
        recorder.issued("a", "read write", t(4));
        recorder.issued("a", "read", t(2));
        recorder.issued("b", "  read ", t(1));
        let mut taken = recorder.take();
        taken.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(taken.len(), 2);
        assert_eq!(taken[0].1.last_used_at, Some(t(5)));
        assert_eq!(taken[0].1.scope_last_issued("read"), Some(t(4)));
        assert_eq!(taken[0].1.scope_last_issued("write"), Some(t(4)));
        assert_eq!(taken[1].1.last_used_at, None);
        assert_eq!(taken[1].1.scopes, vec![("read".to_owned(), t(1))]);
        assert!(recorder.take().is_empty(), "taken once");

        // A failed flush puts its batch back under what arrived meanwhile.
        recorder.used("a", t(9));
        recorder.restore(taken);
        let again = recorder.take();
        let a = &again.iter().find(|(id, _)| id == "a").unwrap().1;
        assert_eq!(a.last_used_at, Some(t(9)));
        assert_eq!(a.scope_last_issued("read"), Some(t(4)));
        assert_eq!(again.len(), 2);
    }
}
