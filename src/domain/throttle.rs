//! Throttling of login attempts (passwords and operator-chosen client secrets), counted before they are verified and keyed per principal and source address, shared by every instance through the database. Uses: store, clock, crypto.
//!
//! Every attempt must pass three counters, each with the same back-off (a block of 30 s at its
//! threshold within 15 minutes, doubling with each further attempt up to 15 minutes):
//! - the principal from one source address: [`PER_SOURCE`] attempts. Guessing from one address
//!   never locks the principal out from another (as Auth0's brute-force protection keys it);
//! - one source address across principals: [`PER_ADDRESS`] (password spraying);
//! - one principal across addresses: [`PER_PRINCIPAL`] (distributed guessing).
//!
//! An attempt is reserved (counted) in one database transaction before its secret is verified,
//! so parallel attempts, on one instance or several, get no more verifications than sequential
//! ones; it is then settled: a success forgets the principal's count from that address and
//! refunds its attempt on the two others, a failure stays counted. An IPv6 source counts by its
//! /64 (one subscriber's usual allocation).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use time::OffsetDateTime;

use super::Error;
use crate::clock::Clock;
use crate::crypto::secrets::sha256;
use crate::store::{Reservation, Store, ThrottleRule};

/// Attempts of one principal from one source address within `WINDOW` that start a block.
pub const PER_SOURCE: u32 = 5;
/// Attempts from one source address, whatever the principal, that start a block.
pub const PER_ADDRESS: u32 = 100;
/// Attempts on one principal, whatever the address, that start a block.
pub const PER_PRINCIPAL: u32 = 100;
const WINDOW: Duration = Duration::from_secs(15 * 60);
/// The first block; each further attempt doubles it, up to `MAX_BLOCK`.
const FIRST_BLOCK: Duration = Duration::from_secs(30);
const MAX_BLOCK: Duration = Duration::from_secs(15 * 60);
/// How far back each mirror reload reaches before its previous one: covers a block committed
/// a little after the time it was stamped with, and clocks of instances a little apart. A
/// block missed anyway is still enforced by the database.
const RELOAD_OVERLAP: time::Duration = time::Duration::seconds(5);

/// Who is guessed at. Only digests reach the table, never a name.
#[derive(Debug, Clone, Copy)]
pub enum Principal<'a> {
    /// A normalised username (whether or not such a user exists).
    User(&'a str),
    Client(&'a str),
}

impl Principal<'_> {
    fn name(self) -> String {
        match self {
            Self::User(name) => format!("user:{name}"),
            Self::Client(id) => format!("client:{id}"),
        }
    }
}

/// The address an attempt is counted under: IPv4 as is, IPv6 by its /64.
fn source_text(source: Option<IpAddr>) -> String {
    match source.map(|ip| ip.to_canonical()) {
        Some(IpAddr::V4(ip)) => ip.to_string(),
        Some(IpAddr::V6(ip)) => {
            let prefix = u128::from(ip) & !((1u128 << 64) - 1);
            format!("{}/64", std::net::Ipv6Addr::from(prefix))
        }
        None => "unknown".to_owned(),
    }
}

/// The three counters of an attempt: principal from source, source, principal.
fn rules(principal: Principal<'_>, source: Option<IpAddr>) -> [ThrottleRule; 3] {
    // The address first: its text never holds `|`, so no name can forge another pair.
    let address = format!("addr:{}", source_text(source));
    let rule = |text: String, threshold| ThrottleRule {
        key: sha256(text.as_bytes()),
        threshold,
        window: WINDOW,
        first_block: FIRST_BLOCK,
        max_block: MAX_BLOCK,
    };
    [
        rule(format!("{address}|{}", principal.name()), PER_SOURCE),
        rule(address, PER_ADDRESS),
        rule(principal.name(), PER_PRINCIPAL),
    ]
}

/// A reserved attempt, to be settled once verified.
#[must_use = "settle the attempt"]
pub struct Attempt {
    /// The keys of [`rules`], in its order.
    keys: [[u8; 32]; 3],
    /// The blocks this attempt started.
    blocks: Vec<([u8; 32], OffsetDateTime)>,
}

/// What verifying an attempt showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Succeeded,
    Failed,
    /// Not verified (the hashing pool was busy, say): the attempt is taken back.
    Unverified,
}

pub struct Throttle {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    /// Keys blocked now, and until when: refused without a round trip. The database decides
    /// every attempt this does not refuse.
    blocked: RwLock<HashMap<[u8; 32], OffsetDateTime>>,
    /// When the mirror last loaded the blocks that changed.
    loaded_at: Mutex<Option<OffsetDateTime>>,
}

impl Throttle {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            clock,
            blocked: RwLock::new(HashMap::new()),
            loaded_at: Mutex::new(None),
        }
    }

    /// Counts an attempt on `principal` from `source` before it is verified, or refuses it with
    /// 429 while one of its counters is blocked (then nothing is counted).
    pub async fn reserve(
        &self,
        principal: Principal<'_>,
        source: Option<IpAddr>,
    ) -> Result<Attempt, Error> {
        let rules = rules(principal, source);
        let now = self.clock.now();
        let mirrored = {
            let blocked = self.blocked.read().unwrap_or_else(|p| p.into_inner());
            rules
                .iter()
                .filter_map(|rule| blocked.get(&rule.key).copied())
                .filter(|until| *until > now)
                .max()
        };
        if let Some(until) = mirrored {
            return Err(throttled(until, now));
        }
        match self.store.reserve_attempt(&rules, now).await? {
            Reservation::Refused { key, until } => {
                self.mirror(key, Some(until));
                Err(throttled(until, now))
            }
            Reservation::Admitted { blocks } => {
                for (key, until) in &blocks {
                    self.mirror(*key, Some(*until));
                }
                Ok(Attempt {
                    keys: rules.map(|rule| rule.key),
                    blocks,
                })
            }
        }
    }

    /// Settles a reserved attempt. A failure stays counted; a success forgets the principal's
    /// count from this source and refunds the attempt elsewhere; an unverified attempt is
    /// refunded. A refund that cannot be written leaves the attempt counted: it is logged,
    /// never fatal to the request.
    pub async fn settle(&self, attempt: Attempt, verdict: Verdict) {
        if verdict == Verdict::Failed {
            return;
        }
        let now = self.clock.now();
        for (n, key) in attempt.keys.iter().enumerate() {
            let own_block = attempt
                .blocks
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, until)| *until);
            let forget = n == 0 && verdict == Verdict::Succeeded;
            if let Err(error) = self.store.refund_attempt(key, forget, own_block, now).await {
                tracing::warn!(%error, "could not refund a login attempt; it stays counted");
                continue;
            }
            if own_block.is_some() {
                self.mirror(*key, None);
            }
        }
    }

    fn mirror(&self, key: [u8; 32], until: Option<OffsetDateTime>) {
        let mut blocked = self.blocked.write().unwrap_or_else(|p| p.into_inner());
        match until {
            Some(until) => {
                blocked.insert(key, until);
            }
            None => {
                blocked.remove(&key);
            }
        }
    }

    /// Loads the blocks that changed since the last load (made on every instance), through an
    /// index on the change time, and forgets those that ended.
    pub async fn refresh(&self) -> Result<(), Error> {
        let now = self.clock.now();
        let since = self
            .loaded_at
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map_or(now - MAX_BLOCK, |at| at - RELOAD_OVERLAP);
        let rows = self.store.list_throttle_changes(since).await?;
        {
            let mut blocked = self.blocked.write().unwrap_or_else(|p| p.into_inner());
            for (key, until) in rows {
                let Ok(key) = <[u8; 32]>::try_from(key) else {
                    continue;
                };
                match until.filter(|until| *until > now) {
                    Some(until) => blocked.insert(key, until),
                    None => blocked.remove(&key),
                };
            }
            blocked.retain(|_, until| *until > now);
        }
        *self.loaded_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(now);
        Ok(())
    }
}

fn throttled(until: OffsetDateTime, now: OffsetDateTime) -> Error {
    Error::Throttled {
        retry_after_seconds: (until - now).whole_seconds().max(1) as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::MockClock;

    /// The counting lives in the store: these tests run it on a throwaway SQLite file.
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

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    /// One attempt settled with `verdict`: the Retry-After it was refused with, if it was.
    async fn attempt(
        throttle: &Throttle,
        principal: Principal<'_>,
        source: Option<IpAddr>,
        verdict: Verdict,
    ) -> Option<u64> {
        match throttle.reserve(principal, source).await {
            Ok(attempt) => {
                throttle.settle(attempt, verdict).await;
                None
            }
            Err(Error::Throttled {
                retry_after_seconds,
            }) => Some(retry_after_seconds),
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn principals_and_sources_are_counted_apart() {
        let [pair, address, principal] = rules(Principal::User("web"), ip("192.0.2.1"));
        let [client_pair, _, client] = rules(Principal::Client("web"), ip("192.0.2.1"));
        assert_ne!(pair.key, client_pair.key);
        assert_ne!(principal.key, client.key);
        // Only digests reach the table, never a name.
        assert_eq!(principal.key, sha256(b"user:web"));
        assert_eq!(address.key, sha256(b"addr:192.0.2.1"));
        assert_eq!(pair.key, sha256(b"addr:192.0.2.1|user:web"));
        assert_eq!(
            [pair.threshold, address.threshold, principal.threshold],
            [PER_SOURCE, PER_ADDRESS, PER_PRINCIPAL]
        );
        // IPv4 written as IPv6 is the same address; IPv6 counts by its /64.
        assert_eq!(source_text(ip("::ffff:192.0.2.1")), "192.0.2.1");
        assert_eq!(
            source_text(ip("2001:db8:1:2:aaaa::1")),
            source_text(ip("2001:db8:1:2:bbbb::2"))
        );
        assert_eq!(source_text(ip("2001:db8:1:2::1")), "2001:db8:1:2::/64");
        assert_ne!(
            source_text(ip("2001:db8:1:2::1")),
            source_text(ip("2001:db8:1:3::1"))
        );
        assert_eq!(source_text(None), "unknown");
    }

    #[test]
    fn the_back_off_doubles_from_the_threshold_up_to_15_minutes() {
        let [rule, ..] = rules(Principal::User("alice"), None);
        let blocks: Vec<Option<u64>> = (1..=12)
            .map(|n| rule.block_after(n).map(|d| d.as_secs()))
            .collect();
        assert_eq!(
            blocks,
            [
                None,
                None,
                None,
                None,
                Some(30),
                Some(60),
                Some(120),
                Some(240),
                Some(480),
                Some(900),
                Some(900),
                Some(900)
            ]
        );
        assert_eq!(rule.block_after(u32::MAX).map(|d| d.as_secs()), Some(900));
    }

    #[tokio::test]
    async fn blocks_start_at_the_fifth_failure_and_double() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(MockClock::starting_now());
        let throttle = Throttle::new(store(&dir).await, clock.clone());
        let alice = Principal::User("alice");
        let here = ip("192.0.2.1");
        for _ in 0..5 {
            assert_eq!(attempt(&throttle, alice, here, Verdict::Failed).await, None);
        }
        assert_eq!(
            attempt(&throttle, alice, here, Verdict::Failed).await,
            Some(30)
        );
        // Refused attempts are not counted: each block's end lets one more through, which
        // doubles the next block.
        let mut block = 30;
        // (The cap, 15 minutes, is past the window here: `block_after` shows it.)
        for seconds in [60, 120, 240, 480] {
            clock.advance(time::Duration::seconds(block));
            assert_eq!(attempt(&throttle, alice, here, Verdict::Failed).await, None);
            assert_eq!(
                attempt(&throttle, alice, here, Verdict::Failed).await,
                Some(seconds as u64)
            );
            block = seconds;
        }
        // The block ends when it says, and Retry-After never says 0 before then.
        clock.advance(time::Duration::milliseconds(479_500));
        assert_eq!(
            attempt(&throttle, alice, here, Verdict::Failed).await,
            Some(1)
        );
    }

    #[tokio::test]
    async fn a_success_forgets_the_count_from_its_source() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(MockClock::starting_now());
        let throttle = Throttle::new(store(&dir).await, clock.clone());
        let alice = Principal::User("alice");
        let here = ip("192.0.2.1");
        for _ in 0..4 {
            assert_eq!(attempt(&throttle, alice, here, Verdict::Failed).await, None);
        }
        // The fifth attempt succeeds: the block it started is lifted, the count forgotten.
        assert_eq!(
            attempt(&throttle, alice, here, Verdict::Succeeded).await,
            None
        );
        for _ in 0..5 {
            assert_eq!(attempt(&throttle, alice, here, Verdict::Failed).await, None);
        }
        assert_eq!(
            attempt(&throttle, alice, here, Verdict::Failed).await,
            Some(30)
        );
        // An attempt that was never verified is taken back.
        clock.advance(time::Duration::seconds(30));
        let bob = Principal::User("bob");
        for _ in 0..10 {
            assert_eq!(
                attempt(&throttle, bob, here, Verdict::Unverified).await,
                None
            );
        }
    }

    #[tokio::test]
    async fn guessing_from_one_address_never_blocks_another() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(MockClock::starting_now());
        let throttle = Throttle::new(store(&dir).await, clock.clone());
        let admin = Principal::Client("admin");
        for _ in 0..5 {
            attempt(&throttle, admin, ip("198.51.100.9"), Verdict::Failed).await;
        }
        assert_eq!(
            attempt(&throttle, admin, ip("198.51.100.9"), Verdict::Failed).await,
            Some(30)
        );
        assert_eq!(
            attempt(&throttle, admin, ip("192.0.2.1"), Verdict::Succeeded).await,
            None
        );
    }

    #[tokio::test]
    async fn one_address_spraying_many_principals_is_blocked() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(MockClock::starting_now());
        let throttle = Throttle::new(store(&dir).await, clock.clone());
        let sprayer = ip("203.0.113.5");
        for n in 0..PER_ADDRESS {
            let name = format!("user{n}");
            assert_eq!(
                attempt(&throttle, Principal::User(&name), sprayer, Verdict::Failed).await,
                None
            );
        }
        assert_eq!(
            attempt(
                &throttle,
                Principal::User("fresh"),
                sprayer,
                Verdict::Failed
            )
            .await,
            Some(30)
        );
        // Other addresses are not concerned.
        assert_eq!(
            attempt(
                &throttle,
                Principal::User("fresh"),
                ip("192.0.2.1"),
                Verdict::Failed
            )
            .await,
            None
        );
    }

    #[tokio::test]
    async fn many_addresses_guessing_one_principal_meet_its_ceiling() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(MockClock::starting_now());
        let throttle = Throttle::new(store(&dir).await, clock.clone());
        let alice = Principal::User("alice");
        for n in 0..PER_PRINCIPAL {
            let source = Some(IpAddr::from([10, 0, (n / 256) as u8, (n % 256) as u8]));
            assert_eq!(
                attempt(&throttle, alice, source, Verdict::Failed).await,
                None
            );
        }
        assert_eq!(
            attempt(&throttle, alice, ip("192.0.2.1"), Verdict::Failed).await,
            Some(30)
        );
        assert_eq!(
            attempt(
                &throttle,
                Principal::User("bob"),
                ip("192.0.2.1"),
                Verdict::Failed
            )
            .await,
            None
        );
    }

    #[tokio::test]
    async fn failures_count_within_a_15_minute_window() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(MockClock::starting_now());
        let throttle = Throttle::new(store(&dir).await, clock.clone());
        let alice = Principal::User("alice");
        for _ in 0..4 {
            attempt(&throttle, alice, None, Verdict::Failed).await;
        }
        clock.advance(time::Duration::try_from(WINDOW).unwrap() + time::Duration::seconds(1));
        // A new window: five more attempts are admitted, the sixth is refused.
        for _ in 0..5 {
            assert_eq!(attempt(&throttle, alice, None, Verdict::Failed).await, None);
        }
        assert_eq!(
            attempt(&throttle, alice, None, Verdict::Failed).await,
            Some(30)
        );
    }

    #[tokio::test]
    async fn blocks_reach_other_instances_through_the_database_and_their_mirror() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let clock = Arc::new(MockClock::starting_now());
        let here = Throttle::new(Arc::clone(&store), clock.clone());
        let there = Throttle::new(store, clock.clone());
        let web = Principal::Client("web");
        let source = ip("192.0.2.1");
        for _ in 0..5 {
            attempt(&here, web, source, Verdict::Failed).await;
        }
        // The database refuses at once, on every instance; the refusal is then mirrored.
        assert_eq!(
            attempt(&there, web, source, Verdict::Failed).await,
            Some(30)
        );
        let other = Throttle::new(Arc::clone(&here.store), clock.clone());
        other.refresh().await.unwrap();
        assert!(
            other
                .blocked
                .read()
                .unwrap()
                .contains_key(&rules(web, source)[0].key)
        );
        // Reloads read only what changed since the last one (and a short overlap).
        clock.advance(time::Duration::seconds(20));
        other.refresh().await.unwrap();
        assert_eq!(
            other
                .store
                .list_throttle_changes(clock.now() - RELOAD_OVERLAP)
                .await
                .unwrap()
                .len(),
            0
        );
        // A block that ended is forgotten.
        clock.advance(time::Duration::seconds(11));
        other.refresh().await.unwrap();
        assert!(other.blocked.read().unwrap().is_empty());
    }
}
