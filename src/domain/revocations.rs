//! Revocation state in memory: revoked jtis (until their exp), revoked sessions, and cut-offs per subject and per client; loaded incrementally from the database and kept current by the change feed, so checking a token costs no round trip. Uses: store, model.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use time::OffsetDateTime;

use super::keys::{AccessTokenClaims, issued_at_millis};
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
    /// Cut-offs: tokens issued at or before this unix time in milliseconds are revoked (a
    /// token's issue time to the millisecond is in its UUIDv7 `jti`).
    subjects: HashMap<String, (i64, i64)>,
    clients: HashMap<String, (i64, i64)>,
    /// Scope cut-offs by role name (tokens naming the role in `roles`) and by subject: tokens
    /// issued at or before the cut-off that carry one of the scopes are revoked. One entry per
    /// change, whatever the number of users it reaches.
    roles: HashMap<String, Vec<ScopeCutoff>>,
    subject_scopes: HashMap<String, Vec<ScopeCutoff>>,
}

/// Scopes taken away at a moment (unix milliseconds), mattering until `until` (unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
struct ScopeCutoff {
    cutoff: i64,
    until: i64,
    scopes: Vec<String>,
}

impl ScopeCutoff {
    fn matches(&self, issued: i64, scope: Option<&str>) -> bool {
        issued <= self.cutoff
            && scope.is_some_and(|scope| {
                scope
                    .split(' ')
                    .any(|s| self.scopes.iter().any(|lost| lost == s))
            })
    }
}

/// Adds a scope cut-off, or moves an entry with the same scopes later: repeated edits of one
/// role keep one entry per distinct set of lost scopes.
fn merge_scope_cutoff(
    map: &mut HashMap<String, Vec<ScopeCutoff>>,
    key: String,
    entry: ScopeCutoff,
) {
    let entries = map.entry(key).or_default();
    match entries.iter_mut().find(|e| e.scopes == entry.scopes) {
        Some(existing) => {
            existing.cutoff = existing.cutoff.max(entry.cutoff);
            existing.until = existing.until.max(entry.until);
        }
        None => entries.push(entry),
    }
}

#[derive(Default)]
pub struct RevocationState {
    state: RwLock<State>,
    /// The clock reading (unix milliseconds) taken before the last catch-up that succeeded:
    /// everything revoked before it is applied. 0 until the first.
    fresh_at: AtomicI64,
}

impl RevocationState {
    /// Whether an access token (already verified) has been revoked in any way.
    pub fn is_revoked(&self, claims: &AccessTokenClaims) -> bool {
        let issued = issued_at_millis(claims);
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        state.jtis.contains_key(&claims.jti)
            || claims
                .sid
                .as_ref()
                .is_some_and(|sid| state.sessions.contains_key(sid))
            || state
                .subjects
                .get(&claims.sub)
                .is_some_and(|(cutoff, _)| issued <= *cutoff)
            || state
                .clients
                .get(&claims.client_id)
                .is_some_and(|(cutoff, _)| issued <= *cutoff)
            || Self::scope_revoked(&state, claims, issued)
    }

    /// Whether a lost scope cuts the token off: through a role it names, or its subject.
    fn scope_revoked(state: &State, claims: &AccessTokenClaims, issued: i64) -> bool {
        let scope = claims.scope.as_deref();
        let cut = |entries: Option<&Vec<ScopeCutoff>>| {
            entries.is_some_and(|entries| entries.iter().any(|e| e.matches(issued, scope)))
        };
        cut(state.subject_scopes.get(&claims.sub))
            || claims
                .roles
                .iter()
                .flatten()
                .any(|role| cut(state.roles.get(role)))
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
                    let cutoff = (revocation.revoked_at.unix_timestamp_nanos() / 1_000_000) as i64;
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
                        RevocationKind::Role | RevocationKind::SubjectScope => {
                            let entry = ScopeCutoff {
                                cutoff,
                                until,
                                scopes: revocation
                                    .scopes
                                    .unwrap_or_default()
                                    .split(' ')
                                    .filter(|s| !s.is_empty())
                                    .map(str::to_owned)
                                    .collect(),
                            };
                            let map = if revocation.kind == RevocationKind::Role {
                                &mut state.roles
                            } else {
                                &mut state.subject_scopes
                            };
                            merge_scope_cutoff(map, revocation.value, entry);
                        }
                    }
                }
            }
            if done {
                break;
            }
        }
        self.fresh_at.fetch_max(unix_millis(now), Ordering::Relaxed);
        Ok(applied)
    }

    /// Whether the last successful catch-up began at most `max_staleness` before `now`
    /// (CONTRACT: `TESSERA_REVOCATION_MAX_STALENESS`).
    pub fn is_fresh(&self, now: OffsetDateTime, max_staleness: Duration) -> bool {
        let age = unix_millis(now).saturating_sub(self.fresh_at.load(Ordering::Relaxed));
        u128::try_from(age).map_or(true, |age| age <= max_staleness.as_millis())
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
        let state = &mut *state;
        for map in [&mut state.roles, &mut state.subject_scopes] {
            map.retain(|_, entries| {
                entries.retain(|e| e.until > now);
                !entries.is_empty()
            });
        }
    }

    /// How many scope cut-offs are held (a role edit adds one, whatever its reach).
    pub fn scope_cutoffs(&self) -> usize {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        state
            .roles
            .values()
            .chain(state.subject_scopes.values())
            .map(Vec::len)
            .sum()
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

fn unix_millis(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// Keeps the latest cut-off of a principal, and the latest time it can matter.
fn merge_cutoff(map: &mut HashMap<String, (i64, i64)>, key: String, cutoff: i64, until: i64) {
    let entry = map.entry(key).or_insert((cutoff, until));
    entry.0 = entry.0.max(cutoff);
    entry.1 = entry.1.max(until);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(sub: &str, client_id: &str, sid: Option<&str>, iat: i64) -> AccessTokenClaims {
        AccessTokenClaims {
            iss: "https://issuer".into(),
            sub: sub.into(),
            aud: "https://api".into(),
            exp: iat + 300,
            iat,
            jti: format!("jti-{sub}-{iat}"),
            client_id: client_id.into(),
            scope: None,
            sid: sid.map(str::to_owned),
            nbf: None,
            roles: None,
            status: None,
        }
    }

    fn user_token(sub: &str, scope: &str, roles: &[&str], iat: i64) -> AccessTokenClaims {
        AccessTokenClaims {
            scope: Some(scope.into()),
            roles: Some(roles.iter().map(|r| r.to_string()).collect()),
            ..claims(sub, "web", Some("s1"), iat)
        }
    }

    fn lost(cutoff: i64, scopes: &[&str]) -> ScopeCutoff {
        ScopeCutoff {
            cutoff,
            until: 400,
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_role_cutoff_revokes_earlier_tokens_naming_the_role_and_carrying_a_lost_scope() {
        let state = state_with(|s| {
            merge_scope_cutoff(&mut s.roles, "writer".into(), lost(100_999, &["write"]));
        });
        // Named the role, carries the lost scope, issued before: revoked, whoever the user.
        assert!(state.is_revoked(&user_token("alice", "read write", &["writer"], 100)));
        assert!(state.is_revoked(&user_token("bob", "write", &["reader", "writer"], 50)));
        // Issued after the change: its scopes were read after it.
        assert!(!state.is_revoked(&user_token("alice", "read write", &["writer"], 101)));
        // Does not carry the lost scope: the change took nothing from it.
        assert!(!state.is_revoked(&user_token("alice", "read", &["writer"], 100)));
        // Did not come through the role.
        assert!(!state.is_revoked(&user_token("alice", "write", &["editor"], 100)));
        assert!(!state.is_revoked(&claims("alice", "web", None, 100)));
        assert_eq!(state.scope_cutoffs(), 1);
    }

    #[test]
    fn a_subject_scope_cutoff_revokes_only_that_users_tokens_carrying_a_lost_scope() {
        let state = state_with(|s| {
            merge_scope_cutoff(
                &mut s.subject_scopes,
                "alice".into(),
                lost(100_999, &["write", "admin"]),
            );
        });
        assert!(state.is_revoked(&user_token("alice", "read write", &["writer"], 100)));
        assert!(state.is_revoked(&user_token("alice", "admin", &[], 99)));
        assert!(!state.is_revoked(&user_token("alice", "read", &["writer"], 100)));
        assert!(!state.is_revoked(&user_token("alice", "write", &["writer"], 101)));
        assert!(!state.is_revoked(&user_token("bob", "write", &["writer"], 100)));
    }

    #[test]
    fn repeated_edits_of_a_role_keep_one_entry_per_set_of_lost_scopes() {
        let mut map = HashMap::new();
        merge_scope_cutoff(&mut map, "writer".into(), lost(100, &["write"]));
        merge_scope_cutoff(&mut map, "writer".into(), lost(200, &["write"]));
        merge_scope_cutoff(&mut map, "writer".into(), lost(150, &["write"]));
        assert_eq!(map["writer"], vec![lost(200, &["write"])]);
        merge_scope_cutoff(&mut map, "writer".into(), lost(300, &["read"]));
        assert_eq!(map["writer"].len(), 2);
    }

    #[test]
    fn scope_cutoffs_are_pruned_after_they_can_match_nothing() {
        let state = state_with(|s| {
            merge_scope_cutoff(&mut s.roles, "old".into(), lost(500, &["a"]));
            let mut late = lost(500, &["b"]);
            late.until = 2_000;
            merge_scope_cutoff(&mut s.roles, "old".into(), late.clone());
            merge_scope_cutoff(&mut s.subject_scopes, "alice".into(), lost(500, &["a"]));
        });
        assert_eq!(state.scope_cutoffs(), 3);
        state.prune(OffsetDateTime::from_unix_timestamp(1_000).unwrap());
        assert_eq!(state.scope_cutoffs(), 1);
        let s = state.state.read().unwrap();
        assert!(s.subject_scopes.is_empty());
        assert_eq!(s.roles["old"].len(), 1);
    }

    fn state_with(fill: impl FnOnce(&mut State)) -> RevocationState {
        let state = RevocationState::default();
        fill(&mut state.state.write().unwrap());
        state
    }

    #[test]
    fn nothing_is_revoked_in_an_empty_state() {
        let state = RevocationState::default();
        assert!(!state.is_revoked(&claims("alice", "web", Some("s1"), 100)));
        assert_eq!(state.revoked_jtis(), 0);
    }

    #[test]
    fn a_revoked_jti_revokes_that_token_only() {
        let token = claims("alice", "web", None, 100);
        let state = state_with(|s| {
            s.jtis.insert(token.jti.clone(), 400);
        });
        assert!(state.is_revoked(&token));
        assert!(!state.is_revoked(&claims("alice", "web", None, 101)));
        assert_eq!(state.revoked_jtis(), 1);
    }

    #[test]
    fn a_revoked_session_revokes_the_tokens_carrying_its_sid() {
        let state = state_with(|s| {
            s.sessions.insert("s1".into(), 400);
        });
        assert!(state.is_revoked(&claims("alice", "web", Some("s1"), 100)));
        assert!(!state.is_revoked(&claims("alice", "web", Some("s2"), 100)));
        // A token without a session (client credentials) is not in any session.
        assert!(!state.is_revoked(&claims("alice", "web", None, 100)));
        // The sid is matched, not the subject or the client.
        assert!(!state.is_revoked(&claims("s1", "s1", None, 100)));
    }

    #[test]
    fn a_subject_cutoff_revokes_tokens_issued_at_or_before_it() {
        let state = state_with(|s| {
            // At or before the end of second 100 (these jtis carry no time: their whole `iat`
            // second counts).
            s.subjects.insert("alice".into(), (100_999, 400));
        });
        assert!(state.is_revoked(&claims("alice", "web", None, 99)));
        assert!(state.is_revoked(&claims("alice", "web", None, 100)));
        assert!(!state.is_revoked(&claims("alice", "web", None, 101)));
        assert!(!state.is_revoked(&claims("bob", "web", None, 99)));
        // A subject cut-off does not apply to a client of the same name.
        assert!(!state.is_revoked(&claims("bob", "alice", None, 99)));
    }

    #[test]
    fn a_client_cutoff_revokes_the_clients_tokens_issued_at_or_before_it() {
        let state = state_with(|s| {
            s.clients.insert("web".into(), (100_999, 400));
        });
        assert!(state.is_revoked(&claims("alice", "web", Some("s1"), 100)));
        assert!(state.is_revoked(&claims("bob", "web", None, 50)));
        assert!(!state.is_revoked(&claims("alice", "web", None, 101)));
        assert!(!state.is_revoked(&claims("alice", "other", None, 50)));
        assert!(!state.is_revoked(&claims("web", "other", None, 50)));
    }

    #[test]
    fn a_cutoff_divides_one_second_at_the_millisecond() {
        let at = |ms: i64| {
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap()
        };
        let minted = |ms: i64| AccessTokenClaims {
            jti: super::super::keys::jti(at(ms)),
            ..claims("alice", "web", None, ms / 1_000)
        };
        let state = state_with(|s| {
            s.clients.insert("web".into(), (100_500, 400));
        });
        assert!(state.is_revoked(&minted(100_000)));
        assert!(state.is_revoked(&minted(100_500)));
        assert!(!state.is_revoked(&minted(100_501)));
        assert!(!state.is_revoked(&minted(100_999)));
        assert!(state.is_revoked(&minted(99_999)));
    }

    #[test]
    fn cutoffs_only_move_later() {
        let mut map = HashMap::new();
        merge_cutoff(&mut map, "alice".into(), 100, 400);
        assert_eq!(map["alice"], (100, 400));
        merge_cutoff(&mut map, "alice".into(), 200, 500);
        assert_eq!(map["alice"], (200, 500));
        // An older entry, loaded later, neither lowers the cut-off nor shortens its life.
        merge_cutoff(&mut map, "alice".into(), 150, 450);
        assert_eq!(map["alice"], (200, 500));
        // Each part is the latest of its own.
        merge_cutoff(&mut map, "alice".into(), 50, 900);
        assert_eq!(map["alice"], (200, 900));
        merge_cutoff(&mut map, "bob".into(), 10, 20);
        assert_eq!(map.len(), 2);
        assert_eq!(map["bob"], (10, 20));
    }

    #[test]
    fn the_state_is_fresh_for_max_staleness_after_the_last_successful_catch_up() {
        let at = |millis: i64| {
            OffsetDateTime::from_unix_timestamp_nanos(millis as i128 * 1_000_000).unwrap()
        };
        let limit = Duration::from_secs(30);
        let state = RevocationState::default();
        // Never caught up: stale.
        assert!(!state.is_fresh(at(1_000_000), limit));
        state.fresh_at.fetch_max(1_000_000, Ordering::Relaxed);
        assert!(state.is_fresh(at(1_000_000), limit));
        assert!(state.is_fresh(at(1_030_000), limit));
        assert!(!state.is_fresh(at(1_030_001), limit));
        // A clock set back is not staleness.
        assert!(state.is_fresh(at(900_000), limit));
    }

    #[test]
    fn pruning_drops_what_has_expired_at_most_once_a_minute() {
        let at = |unix: i64| OffsetDateTime::from_unix_timestamp(unix).unwrap();
        let state = state_with(|s| {
            s.jtis.insert("old".into(), 1_000);
            s.jtis.insert("new".into(), 2_000);
            s.sessions.insert("old".into(), 1_000);
            s.sessions.insert("new".into(), 2_000);
            s.subjects.insert("old".into(), (500, 1_000));
            s.subjects.insert("new".into(), (500, 2_000));
            s.clients.insert("old".into(), (500, 1_000));
            s.clients.insert("new".into(), (500, 2_000));
        });
        let sizes = |state: &RevocationState| {
            let s = state.state.read().unwrap();
            [
                s.jtis.len(),
                s.sessions.len(),
                s.subjects.len(),
                s.clients.len(),
            ]
        };
        state.prune(at(999));
        assert_eq!(sizes(&state), [2, 2, 2, 2]);
        // Within a minute of the last pass, nothing is walked, expired or not.
        state.prune(at(1_030));
        assert_eq!(sizes(&state), [2, 2, 2, 2]);
        // A minute on, the expired entries go from every map, the others stay.
        state.prune(at(1_059));
        assert_eq!(sizes(&state), [1, 1, 1, 1]);
        {
            let s = state.state.read().unwrap();
            assert!(s.jtis.contains_key("new") && s.sessions.contains_key("new"));
            assert!(s.subjects.contains_key("new") && s.clients.contains_key("new"));
        }
        // An entry is of use until, not at, its expiry.
        state.prune(at(2_000));
        assert_eq!(sizes(&state), [0, 0, 0, 0]);
        assert_eq!(state.revoked_jtis(), 0);
    }
}
