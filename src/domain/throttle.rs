//! Throttling of failed logins per username and per client, shared by every instance through the database. Uses: store, clock, crypto.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use time::OffsetDateTime;

use super::Error;
use crate::clock::Clock;
use crate::crypto::secrets::sha256;
use crate::store::Store;

/// Failures within `WINDOW` that start a block.
const THRESHOLD: u32 = 5;
const WINDOW: Duration = Duration::from_secs(15 * 60);
/// The first block; each further failure doubles it, up to `MAX_BLOCK`.
const FIRST_BLOCK: Duration = Duration::from_secs(30);
const MAX_BLOCK: Duration = Duration::from_secs(15 * 60);

/// What is throttled. The key stored is a digest, so no username reaches the table.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    /// A normalised username (whether or not such a user exists).
    User(&'a str),
    Client(&'a str),
}

impl Subject<'_> {
    fn key(self) -> [u8; 32] {
        match self {
            Self::User(name) => sha256(format!("user:{name}").as_bytes()),
            Self::Client(id) => sha256(format!("client:{id}").as_bytes()),
        }
    }
}

pub struct Throttle {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    /// Keys with recent failures, and their block if any: the mirror that keeps client
    /// authentication free of database round trips.
    recent: RwLock<HashMap<[u8; 32], Option<OffsetDateTime>>>,
}

impl Throttle {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            clock,
            recent: RwLock::new(HashMap::new()),
        }
    }

    /// Refuses with 429 while `subject` is blocked. Users are checked in the database (their
    /// login costs an argon2 hash anyway); clients against the mirror.
    pub async fn check(&self, subject: Subject<'_>) -> Result<(), Error> {
        let until = match subject {
            Subject::User(_) => self.store.find_throttle(&subject.key()).await?,
            Subject::Client(_) => {
                let recent = self.recent.read().unwrap_or_else(|p| p.into_inner());
                // The usual case on the hot path: nobody is failing, so nothing to hash.
                if recent.is_empty() {
                    return Ok(());
                }
                recent.get(&subject.key()).copied().flatten()
            }
        };
        let now = self.clock.now();
        match until {
            Some(until) if until > now => Err(Error::Throttled {
                retry_after_seconds: (until - now).whole_seconds().max(1) as u64,
            }),
            _ => Ok(()),
        }
    }

    pub async fn failure(&self, subject: Subject<'_>) -> Result<(), Error> {
        let key = subject.key();
        let now = self.clock.now();
        let failures = self.store.record_failure(&key, now, WINDOW).await?;
        let mut blocked = None;
        if failures >= THRESHOLD {
            let doublings = (failures - THRESHOLD).min(16);
            let block = FIRST_BLOCK.saturating_mul(1 << doublings).min(MAX_BLOCK);
            let until = now + block;
            self.store.block(&key, until).await?;
            blocked = Some(until);
        }
        self.recent
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, blocked);
        Ok(())
    }

    /// A success forgets the failures (only a round trip when there were some).
    pub async fn success(&self, subject: Subject<'_>) -> Result<(), Error> {
        if matches!(subject, Subject::Client(_))
            && self
                .recent
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .is_empty()
        {
            return Ok(());
        }
        let key = subject.key();
        let known = matches!(subject, Subject::User(_))
            || self
                .recent
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .contains_key(&key);
        if known {
            self.store.clear_failures(&key).await?;
            self.recent
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key);
        }
        Ok(())
    }

    /// Reloads the mirror from the database (failures made on every instance).
    pub async fn refresh(&self) -> Result<(), Error> {
        let since = self.clock.now() - WINDOW;
        let rows = self.store.list_throttled(since).await?;
        let recent = rows
            .into_iter()
            .filter_map(|(key, until)| <[u8; 32]>::try_from(key).ok().map(|k| (k, until)))
            .collect();
        *self.recent.write().unwrap_or_else(|p| p.into_inner()) = recent;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::MockClock;

    /// The back-off lives in `Throttle::failure`, which counts in the store: these tests run it
    /// on a throwaway SQLite file.
    async fn store(dir: &tempfile::TempDir) -> Arc<dyn Store> {
        let url = format!("sqlite://{}", dir.path().join("throttle.db").display());
        let config = crate::config::Settings::default()
            .set("database_url", url)
            .validate()
            .unwrap();
        let store = crate::store::connect(&config.database).await.unwrap();
        store.migrate().await.unwrap();
        store
    }

    /// The Retry-After a check answers, if it refuses.
    fn retry_after(checked: Result<(), Error>) -> Option<u64> {
        match checked {
            Ok(()) => None,
            Err(Error::Throttled {
                retry_after_seconds,
            }) => Some(retry_after_seconds),
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn users_and_clients_of_one_name_are_throttled_apart() {
        assert_ne!(Subject::User("web").key(), Subject::Client("web").key());
        assert_eq!(Subject::User("alice").key(), Subject::User("alice").key());
        assert_ne!(Subject::User("alice").key(), Subject::User("bob").key());
        // Only a digest reaches the table, never the name.
        assert_eq!(Subject::User("alice").key(), sha256(b"user:alice"));
        assert_eq!(Subject::Client("web").key(), sha256(b"client:web"));
    }

    #[tokio::test]
    async fn blocks_start_at_the_fifth_failure_and_double_up_to_15_minutes() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(MockClock::starting_now());
        let throttle = Throttle::new(store(&dir).await, clock.clone());
        let alice = Subject::User("alice");
        for _ in 0..4 {
            throttle.failure(alice).await.unwrap();
            assert_eq!(retry_after(throttle.check(alice).await), None);
        }
        for seconds in [30, 60, 120, 240, 480, 900, 900] {
            throttle.failure(alice).await.unwrap();
            assert_eq!(retry_after(throttle.check(alice).await), Some(seconds));
        }
        // However many failures follow, the block stays capped.
        for _ in 0..30 {
            throttle.failure(alice).await.unwrap();
        }
        assert_eq!(retry_after(throttle.check(alice).await), Some(900));
        assert_eq!(
            retry_after(throttle.check(Subject::User("bob")).await),
            None
        );
        // The block ends when it says, and Retry-After never says 0 before then.
        clock.advance(time::Duration::milliseconds(899_500));
        assert_eq!(retry_after(throttle.check(alice).await), Some(1));
        clock.advance(time::Duration::milliseconds(500));
        assert_eq!(retry_after(throttle.check(alice).await), None);
        // A success forgets: the count starts again.
        throttle.success(alice).await.unwrap();
        for _ in 0..4 {
            throttle.failure(alice).await.unwrap();
        }
        assert_eq!(retry_after(throttle.check(alice).await), None);
    }

    #[tokio::test]
    async fn failures_count_within_a_15_minute_window() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(MockClock::starting_now());
        let throttle = Throttle::new(store(&dir).await, clock.clone());
        let alice = Subject::User("alice");
        for _ in 0..4 {
            throttle.failure(alice).await.unwrap();
        }
        clock.advance(time::Duration::try_from(WINDOW).unwrap() + time::Duration::seconds(1));
        // A new window: four more failures are still no block, the fifth is.
        for _ in 0..4 {
            throttle.failure(alice).await.unwrap();
            assert_eq!(retry_after(throttle.check(alice).await), None);
        }
        throttle.failure(alice).await.unwrap();
        assert_eq!(retry_after(throttle.check(alice).await), Some(30));
    }

    #[tokio::test]
    async fn blocks_are_shared_through_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let clock = Arc::new(MockClock::starting_now());
        let here = Throttle::new(Arc::clone(&store), clock.clone());
        let there = Throttle::new(store, clock.clone());
        let web = Subject::Client("web");
        for _ in 0..5 {
            here.failure(web).await.unwrap();
        }
        assert_eq!(retry_after(here.check(web).await), Some(30));
        // Clients are checked against the mirror: another instance sees the block once it
        // reloads.
        assert_eq!(retry_after(there.check(web).await), None);
        there.refresh().await.unwrap();
        assert_eq!(retry_after(there.check(web).await), Some(30));
        assert_eq!(
            retry_after(there.check(Subject::Client("other")).await),
            None
        );
        // Users are checked in the database: every instance sees a block at once.
        let alice = Subject::User("alice");
        for _ in 0..5 {
            here.failure(alice).await.unwrap();
        }
        assert_eq!(retry_after(there.check(alice).await), Some(30));
        // A success clears the database, and the mirrors as they reload.
        here.success(web).await.unwrap();
        assert_eq!(retry_after(here.check(web).await), None);
        there.refresh().await.unwrap();
        assert_eq!(retry_after(there.check(web).await), None);
        there.success(alice).await.unwrap();
        assert_eq!(retry_after(here.check(alice).await), None);
    }
}
