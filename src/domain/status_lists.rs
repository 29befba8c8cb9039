//! The Token Status List (draft-ietf-oauth-status-list): indices handed out without a database write per token, the lists built off the request path by one instance at a time and stored, and the stored lists served. Uses: store, crypto, clock, model.
//!
//! Which entry a token gets:
//! - a token of a session (a login, a rotation) gets an index of its own, recorded on the row
//!   the login or rotation writes anyway (the session row, the successor refresh-token row); a
//!   retry of a rotation hands out the successor's index again;
//! - a client-credentials token gets `base + (iat - period start)` of its client's block for the
//!   current minute, recorded once per client, list and minute (shared by every instance).
//!
//! Indices come from leases of [`LEASE_SIZE`] per instance, from the newest list of the signing
//! key: one list belongs to one key, so revoking a key sets its lists to all ones and touches
//! no token of another key. A list is [`LIST_SIZE`] entries; when it is full, the next lease
//! creates a new list, stored signed (all zeros) before any token names it.
//!
//! Housekeeping ([`Issuer::status_purge_horizon`]): an instance uses a lease for at most
//! [`LEASE_MAX_AGE`], so a list last leased longer ago than that, a block's period, the refresh
//! retry window and an access-token lifetime (with the clock skew) is named by no live token and
//! goes, with its blocks and marks; list ids and indices are never handed out again.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use time::OffsetDateTime;

use super::keys::{CLOCK_SKEW, status_list_uri};
use super::status_bits::StatusBits;
use super::{Error, Issuer};
use crate::crypto::keys::Signer;
use crate::crypto::secrets::sha256;
use crate::model::StatusRef;
use crate::store::status_lists::{StatusInputs, StatusListInfo};
use crate::store::{BuilderLease, StatusPurge, topic};

/// Entries per list: 2^20, 128 KiB uncompressed (the draft's Appendix C size).
pub const LIST_SIZE: i64 = 1 << 20;

/// Indices an instance leases at a time: one database write per this many sessions' tokens.
pub const LEASE_SIZE: i64 = 1024;

/// How long an instance hands out indices from one lease: bounds when a list is last named by
/// a new token, so that housekeeping knows when it can go.
pub const LEASE_MAX_AGE: time::Duration = time::Duration::minutes(5);

/// Client-credentials tokens of one client share an index per second of issue; a block covers
/// this many seconds.
pub const BLOCK_SECONDS: i64 = 60;

/// How often the builder looks for changes; lists are rebuilt on a change and at least every
/// half `ttl`.
pub const BUILD_INTERVAL: Duration = Duration::from_secs(1);

/// How long a builder's lease lasts without renewal (it renews every pass).
const BUILDER_LEASE: time::Duration = time::Duration::seconds(10);

/// The media type of a Status List Token in JWT format (§9.1).
pub const STATUS_LIST_JWT: &str = "application/statuslist+jwt";

/// This instance's side of the status lists: its current lease and the client blocks it knows.
pub struct StatusLists {
    ttl: Option<Duration>,
    lease: tokio::sync::Mutex<Option<Lease>>,
    /// (kid, client, period start) → the block's first entry.
    blocks: Mutex<HashMap<(String, String, i64), StatusRef>>,
    /// Held while a client block is recorded.
    recording: tokio::sync::Mutex<()>,
    /// This instance's name on the builder lease.
    holder: String,
}

struct Lease {
    kid: String,
    taken_at: OffsetDateTime,
    list_id: i64,
    next: i64,
    end: i64,
}

/// A stored list as served: the signed token and its ETag.
pub struct ServedList {
    pub token: String,
    pub etag: String,
    pub max_age: Duration,
}

impl StatusLists {
    pub fn new(ttl: Option<Duration>) -> Self {
        Self {
            ttl,
            lease: tokio::sync::Mutex::new(None),
            blocks: Mutex::new(HashMap::new()),
            recording: tokio::sync::Mutex::new(()),
            holder: uuid::Uuid::new_v4().to_string(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.ttl.is_some()
    }
}

impl Issuer {
    /// `count` consecutive fresh entries of a list of `signer`'s key.
    async fn take_entries(&self, signer: &Signer, count: i64) -> Result<StatusRef, Error> {
        let mut lease = self.status_lists.lease.lock().await;
        let now = self.clock.now();
        let usable = lease.as_ref().is_some_and(|l| {
            l.kid == signer.kid && l.end - l.next >= count && now < l.taken_at + LEASE_MAX_AGE
        });
        if !usable {
            let size = LEASE_SIZE.max(count);
            let taken = self
                .store
                .lease_status_indices(&signer.kid, size, LIST_SIZE, now)
                .await?;
            if taken.created {
                // Announced before any token names it: every instance serves it from now on.
                self.store_list(
                    signer,
                    taken.list_id,
                    &StatusBits::new(LIST_SIZE as usize),
                    -1,
                )
                .await?;
                tracing::info!(list_id = taken.list_id, kid = %signer.kid, "status list created");
            }
            *lease = Some(Lease {
                kid: signer.kid.clone(),
                taken_at: now,
                list_id: taken.list_id,
                next: taken.start,
                end: taken.start + size,
            });
        }
        let lease = lease.as_mut().expect("a usable lease");
        let entry = StatusRef {
            list_id: lease.list_id,
            idx: lease.next,
        };
        lease.next += count;
        Ok(entry)
    }

    /// The entry of a session's next access token (a login or a rotation), signed by `signer`.
    pub(crate) async fn session_status(&self, signer: &Signer) -> Result<Option<StatusRef>, Error> {
        if !self.status_lists.enabled() {
            return Ok(None);
        }
        self.take_entries(signer, 1).await.map(Some)
    }

    /// The entry of a client-credentials token of `client_id` issued at `issued_at`.
    pub(crate) async fn client_status(
        &self,
        signer: &Signer,
        client_id: &str,
        issued_at: OffsetDateTime,
    ) -> Result<Option<StatusRef>, Error> {
        if !self.status_lists.enabled() {
            return Ok(None);
        }
        let second = issued_at.unix_timestamp();
        let period = second - second.rem_euclid(BLOCK_SECONDS);
        let key = (signer.kid.clone(), client_id.to_owned(), period);
        let known = || {
            self.status_lists
                .blocks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&key)
                .copied()
        };
        let block = match known() {
            Some(block) => block,
            None => {
                // One request per instance records a new block; the others that missed it
                // meanwhile (a minute begins under load) wait and use it, instead of each
                // taking and dropping 60 entries and writing a row that loses.
                let _recording = self.status_lists.recording.lock().await;
                if let Some(block) = known() {
                    block
                } else {
                    self.record_block(signer, client_id, period, key).await?
                }
            }
        };
        Ok(Some(StatusRef {
            list_id: block.list_id,
            idx: block.idx + (second - period),
        }))
    }

    /// Takes 60 fresh entries for `client_id`'s block of the period starting at `period` and
    /// records it, unless another instance recorded one first (then theirs is used).
    async fn record_block(
        &self,
        signer: &Signer,
        client_id: &str,
        period: i64,
        key: (String, String, i64),
    ) -> Result<StatusRef, Error> {
        let fresh = self.take_entries(signer, BLOCK_SECONDS).await?;
        // Another instance may have recorded this client's block first: use theirs.
        let base = self
            .store
            .add_status_block(
                fresh.list_id,
                client_id,
                period,
                fresh.idx,
                self.clock.now(),
            )
            .await?;
        let block = StatusRef {
            list_id: fresh.list_id,
            idx: base,
        };
        let mut blocks = self
            .status_lists
            .blocks
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        blocks.retain(|(_, _, p), _| *p >= period - BLOCK_SECONDS);
        blocks.insert(key, block);
        Ok(block)
    }

    /// What housekeeping may delete at `now`: rows that no token still live (with the clock
    /// skew) can name. A block's tokens are issued within its period; a mark is made while its
    /// token is live, and a refresh retry may name the successor's entry again within the retry
    /// window; a list is named by new tokens at most [`LEASE_MAX_AGE`] after its last lease
    /// (plus a block's period, plus the retry window).
    pub fn status_purge_horizon(&self, now: OffsetDateTime) -> StatusPurge {
        let expired_before = now - (self.policy.access_token_ttl + CLOCK_SKEW);
        let block = time::Duration::seconds(BLOCK_SECONDS);
        let named_before = self.status_live_since(now);
        StatusPurge {
            blocks_started_before: (expired_before - block).unix_timestamp(),
            marks_before: named_before,
            lists_leased_before: named_before - LEASE_MAX_AGE - block,
        }
    }

    /// The earliest mint time of a session's or rotation's token (or a mark) that may still
    /// matter at `now`: its access token lives an access-token lifetime (with the clock skew),
    /// and a retry of the rotation within the retry window names the same entry again. Bits of
    /// entries named only earlier no longer matter: no live token names them.
    fn status_live_since(&self, now: OffsetDateTime) -> OffsetDateTime {
        now - (self.policy.access_token_ttl + CLOCK_SKEW) - self.policy.refresh_reuse_grace
    }

    /// One builder pass: rebuilds every list that may still matter whose stored token is older
    /// than the last change or half its `ttl`. `None` when there was work but another instance
    /// holds the builder lease (it builds), else how many lists were rebuilt.
    pub async fn build_status_lists(&self) -> Result<Option<usize>, Error> {
        let Some(ttl) = self.status_lists.ttl else {
            return Ok(Some(0));
        };
        let now = self.clock.now();
        // The version first: whatever is read after it reflects at least that version.
        // Revocations, keys (a revoked key) and clients (a disabled client): all the bits
        // depend on.
        let versions = self.store.change_versions().await?;
        let version = [topic::REVOCATIONS, topic::KEYS, topic::CLIENTS]
            .into_iter()
            .map(|t| super::feed_version(&versions, t))
            .sum();
        let stale: Vec<StatusListInfo> = self
            .store
            .list_status_lists()
            .await?
            .into_iter()
            .filter(|list| self.may_be_referenced(list, now, true))
            .filter(|list| {
                let fresh = list
                    .built_at
                    .is_some_and(|at| at + ttl / 2 > now && at <= now);
                list.built_version != version || !fresh
            })
            .collect();
        // A pass with nothing to do writes nothing (on SQLite every write takes the one lock).
        if stale.is_empty() {
            return Ok(Some(0));
        }
        let lease = self
            .store
            .acquire_status_builder(&self.status_lists.holder, now, now + BUILDER_LEASE)
            .await?;
        if lease == BuilderLease::HeldElsewhere {
            return Ok(None);
        }
        let signer = self.keys.signer()?;
        let mut rebuilt = 0;
        for list in stale {
            let inputs = self
                .store
                .status_inputs(list.list_id, now, self.status_live_since(now))
                .await?;
            let bits = list_bits(&list, &inputs);
            self.store_list(&signer, list.list_id, &bits, version)
                .await?;
            rebuilt += 1;
        }
        Ok(Some(rebuilt))
    }

    /// Whether live tokens may still name `list` (its key signs, or stopped signing less than
    /// an access-token lifetime ago). A revoked key's lists are built (all ones) for as long,
    /// but not listed: none of their tokens is live.
    fn may_be_referenced(
        &self,
        list: &StatusListInfo,
        now: OffsetDateTime,
        building: bool,
    ) -> bool {
        let window = self.policy.access_token_ttl + CLOCK_SKEW;
        match (list.key_state.as_deref(), list.key_ended_at) {
            (Some("active" | "next"), _) => true,
            (Some("retired"), Some(ended)) => ended + window > now,
            (Some("revoked"), Some(ended)) => building && ended + window > now,
            _ => false,
        }
    }

    async fn store_list(
        &self,
        signer: &Signer,
        list_id: i64,
        bits: &StatusBits,
        version: i64,
    ) -> Result<(), Error> {
        let ttl = self.status_lists.ttl.unwrap_or_default().as_secs() as i64;
        let now = self.clock.now();
        let iat = now.unix_timestamp();
        // Rebuilt at least every ttl/2, so a copy fetched and cached for ttl is never past exp.
        let claims = serde_json::json!({
            "sub": status_list_uri(&self.issuer, list_id),
            "iat": iat,
            "exp": iat + 2 * ttl,
            "ttl": ttl,
            "status_list": {"bits": 1, "lst": bits.encode()},
        });
        let token = signer
            .sign_typed("statuslist+jwt", claims.to_string().as_bytes())
            .map_err(|e| Error::crypto(format!("signing a status list: {e}")))?;
        let etag = hex(&sha256(token.as_bytes())[..16]);
        self.store
            .store_status_list(list_id, &token, &etag, version, now)
            .await?;
        Ok(())
    }

    /// The stored list, as every instance serves it.
    pub async fn status_list(&self, list_id: i64) -> Result<ServedList, Error> {
        let ttl = self
            .status_lists
            .ttl
            .ok_or(Error::NotFound("status list"))?;
        let (token, etag) = self
            .store
            .find_status_list(list_id)
            .await?
            .ok_or(Error::NotFound("status list"))?;
        Ok(ServedList {
            token,
            etag,
            max_age: ttl,
        })
    }

    /// The URIs of every list live tokens may name (§9.3, the aggregation endpoint).
    pub async fn status_list_uris(&self) -> Result<Vec<String>, Error> {
        if !self.status_lists.enabled() {
            return Err(Error::NotFound("status lists"));
        }
        let now = self.clock.now();
        Ok(self
            .store
            .list_status_lists()
            .await?
            .iter()
            .filter(|list| self.may_be_referenced(list, now, false))
            .map(|list| status_list_uri(&self.issuer, list.list_id))
            .collect())
    }

    pub fn status_lists_enabled(&self) -> bool {
        self.status_lists.enabled()
    }

    /// Keeps the stored lists current until aborted: one pass every [`BUILD_INTERVAL`], doing
    /// work only on the instance holding the builder lease.
    pub async fn run_status_lists(self: std::sync::Arc<Self>) {
        let mut ticker = tokio::time::interval(BUILD_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            match self.build_status_lists().await {
                Ok(Some(0) | None) => {}
                Ok(Some(rebuilt)) => tracing::debug!(rebuilt, "status lists rebuilt"),
                Err(error) => tracing::warn!(%error, "could not rebuild the status lists"),
            }
        }
    }
}

/// A list's bits: 1 for every entry of a token that introspection answers inactive for a
/// revocation, else 0 (§7.1: VALID, INVALID).
pub fn list_bits(list: &StatusListInfo, inputs: &StatusInputs) -> StatusBits {
    let mut bits = StatusBits::new(list.size as usize);
    if list.key_state.as_deref() == Some("revoked") {
        // Every token the key signed is inactive, and only its tokens name its lists.
        bits.set_range(0, list.size as u64);
        return bits;
    }
    let mut subjects: HashMap<&str, i64> = HashMap::new();
    let mut clients: HashMap<&str, i64> = HashMap::new();
    for (kind, value, at) in &inputs.cutoffs {
        let map = if kind == "subject" {
            &mut subjects
        } else {
            &mut clients
        };
        let at = millis(*at);
        let entry = map.entry(value.as_str()).or_insert(at);
        *entry = (*entry).max(at);
    }
    // Introspection's rule (`RevocationState::is_revoked`): issued at or before the cut-off,
    // to the millisecond.
    let cut_off = |cutoff: Option<&i64>, issued_ms: i64| cutoff.is_some_and(|c| issued_ms <= *c);
    // A disabled (or removed) client's tokens are inactive while it is: set, and clear again
    // if it is enabled again.
    let enabled: HashSet<&str> = inputs.enabled_clients.iter().map(String::as_str).collect();
    for token in &inputs.sessions {
        let issued = millis(token.issued_at);
        if token.session_revoked
            || !enabled.contains(token.client_id.as_str())
            || cut_off(subjects.get(token.user_id.to_string().as_str()), issued)
            || cut_off(clients.get(token.client_id.as_str()), issued)
        {
            bits.set(token.idx as u64);
        }
    }
    for block in &inputs.blocks {
        if !enabled.contains(block.client_id.as_str()) {
            bits.set_range(block.base as u64, (block.base + BLOCK_SECONDS) as u64);
            continue;
        }
        // A client-credentials token's `sub` is its client id.
        let cutoff = [
            clients.get(block.client_id.as_str()),
            subjects.get(block.client_id.as_str()),
        ]
        .into_iter()
        .flatten()
        .max();
        if let Some(cutoff) = cutoff {
            // A second holds a revoked token if it began at or before the cut-off; tokens of
            // the same client later in that second share the entry.
            let seconds =
                (cutoff.div_euclid(1000) - block.period_start + 1).clamp(0, BLOCK_SECONDS);
            bits.set_range(block.base as u64, (block.base + seconds) as u64);
        }
    }
    for idx in &inputs.marks {
        bits.set(*idx as u64);
    }
    bits
}

fn millis(at: OffsetDateTime) -> i64 {
    (at.unix_timestamp_nanos() / 1_000_000) as i64
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
