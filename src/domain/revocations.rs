//! Revocation state in memory: revoked jtis (until their exp), revoked sessions, and cut-offs per subject and per client; loaded incrementally from the database and kept current by the change feed, so checking a token costs no round trip. Uses: store, model.

use std::collections::HashMap;
use std::sync::RwLock;

use time::OffsetDateTime;

use super::keys::AccessTokenClaims;
use crate::model::RevocationKind;
use crate::store::{Store, StoreError};

/// Rows read per query while catching up (a million revoked jtis load in 100 queries).
const LOAD_BATCH: u32 = 10_000;

#[derive(Default)]
struct State {
    /// The highest revocation id applied; later ones are loaded incrementally.
    last_id: i64,
    /// When expired entries were last dropped (unix seconds).
    last_prune: i64,
    /// Values are the unix time after which the entry can no longer match a live token.
    jtis: HashMap<String, i64>,
    sessions: HashMap<String, i64>,
    /// Cut-offs: tokens issued at or before this unix time are revoked.
    subjects: HashMap<String, (i64, i64)>,
    clients: HashMap<String, (i64, i64)>,
}

#[derive(Default)]
pub struct RevocationState {
    state: RwLock<State>,
}

impl RevocationState {
    /// Whether an access token (already verified) has been revoked in any way.
    pub fn is_revoked(&self, claims: &AccessTokenClaims) -> bool {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        state.jtis.contains_key(&claims.jti)
            || claims
                .sid
                .as_ref()
                .is_some_and(|sid| state.sessions.contains_key(sid))
            || state
                .subjects
                .get(&claims.sub)
                .is_some_and(|(cutoff, _)| claims.iat <= *cutoff)
            || state
                .clients
                .get(&claims.client_id)
                .is_some_and(|(cutoff, _)| claims.iat <= *cutoff)
    }

    /// Applies every revocation recorded since the last call (by any instance), and forgets
    /// entries that can no longer match a live token.
    pub async fn catch_up(
        &self,
        store: &dyn Store,
        now: OffsetDateTime,
    ) -> Result<usize, StoreError> {
        let mut applied = 0;
        loop {
            let after = self.state.read().unwrap_or_else(|p| p.into_inner()).last_id;
            let batch = store.list_revocations(after, now, LOAD_BATCH).await?;
            let done = batch.len() < LOAD_BATCH as usize;
            applied += batch.len();
            {
                let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
                for revocation in batch {
                    state.last_id = state.last_id.max(revocation.revocation_id);
                    let until = revocation.expires_at.unix_timestamp();
                    let cutoff = revocation.revoked_at.unix_timestamp();
                    match revocation.kind {
                        RevocationKind::Jti => {
                            state.jtis.insert(revocation.value, until);
                        }
                        RevocationKind::Session => {
                            state.sessions.insert(revocation.value, until);
                        }
                        RevocationKind::Subject => {
                            merge_cutoff(&mut state.subjects, revocation.value, cutoff, until)
                        }
                        RevocationKind::Client => {
                            merge_cutoff(&mut state.clients, revocation.value, cutoff, until)
                        }
                    }
                }
            }
            if done {
                break;
            }
        }
        Ok(applied)
    }

    /// Drops entries past their usefulness, at most once a minute: the pass walks every entry
    /// under the write lock, and with a million revoked jtis that must not happen every sync.
    /// (Expired entries left meanwhile match nothing: their tokens have expired too.)
    pub fn prune(&self, now: OffsetDateTime) {
        let now = now.unix_timestamp();
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        if now - state.last_prune < 60 {
            return;
        }
        state.last_prune = now;
        state.jtis.retain(|_, until| *until > now);
        state.sessions.retain(|_, until| *until > now);
        state.subjects.retain(|_, (_, until)| *until > now);
        state.clients.retain(|_, (_, until)| *until > now);
    }

    /// How many jtis are held (for operators and benchmarks).
    pub fn revoked_jtis(&self) -> usize {
        self.state
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .jtis
            .len()
    }
}

/// Keeps the latest cut-off of a principal, and the latest time it can matter.
fn merge_cutoff(map: &mut HashMap<String, (i64, i64)>, key: String, cutoff: i64, until: i64) {
    let entry = map.entry(key).or_insert((cutoff, until));
    entry.0 = entry.0.max(cutoff);
    entry.1 = entry.1.max(until);
}
