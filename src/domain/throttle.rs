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
