//! Refresh tokens as a state machine (RFC 6749 §6, §10.4; RFC 9700 §4.14): the state a stored token is in, and the one rule that decides what presenting it gets. Uses: nothing.

use std::time::Duration;

use time::OffsetDateTime;

/// A refresh token as stored (only its digest, never the token), with its session's side.
#[derive(Debug, Clone)]
pub struct RefreshTokenRecord {
    pub session_id: uuid::Uuid,
    pub token_digest: [u8; 32],
    pub scope: String,
    pub created_at: OffsetDateTime,
    pub idle_expires_at: OffsetDateTime,
    pub state: RefreshTokenState,
    // The session's side.
    pub client_id: String,
    pub user_id: uuid::Uuid,
    pub session_expires_at: OffsetDateTime,
    pub session: SessionState,
    pub user_disabled: bool,
    /// The roles the session's user holds now: the most a refresh may carry.
    pub held_roles: super::HeldRoles,
    /// The status-list entry of the access token issued with its successor, which a retry of
    /// that rotation hands out again.
    pub successor_status: Option<super::StatusRef>,
}

/// Where a refresh token is in its life. A revoked token stays revoked whatever else happened
/// to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshTokenState {
    /// Not used yet: presenting it rotates it.
    Valid,
    /// Used once, at `at`; its successor is what a retry inside the window may get back.
    Consumed {
        at: OffsetDateTime,
        successor: Successor,
    },
    Revoked {
        at: OffsetDateTime,
    },
}

/// The token a consumed one was rotated into.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Successor {
    /// Sealed under the master key's successor subkey, while the retry window is open.
    pub sealed: Option<Vec<u8>>,
    /// Neither used nor revoked yet.
    pub unused: bool,
    /// Its scope (a rotation may have narrowed it).
    pub scope: Option<String>,
}

/// A login session's state (RFC 9700 §4.14.2: reuse revokes the whole family).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    Live,
    Revoked { at: OffsetDateTime },
}

/// What presenting a refresh token gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict<'a> {
    /// Live: consume it and hand out a successor.
    Rotate,
    /// A retry inside the window (a lost response, a second tab): the successor it already
    /// earned, under the scope granted to that successor.
    Retry {
        successor: String,
        granted_scope: &'a str,
    },
    /// The user has been disabled: revoke the session, refuse.
    RevokeDisabled,
    /// A consumed token presented again with no retry to honour: reuse, which revokes the
    /// session.
    Reuse {
        consumed_at: OffsetDateTime,
        within_window: bool,
    },
    /// Refused; nothing changes.
    Reject,
}

impl RefreshTokenRecord {
    /// Whether `client_id` is the client the token was issued to.
    pub fn owned_by(&self, client_id: &str) -> bool {
        self.client_id == client_id
    }

    /// When the token stops working by itself: its idle expiry or its session's, whichever
    /// comes first.
    pub fn expires_at(&self) -> OffsetDateTime {
        self.idle_expires_at.min(self.session_expires_at)
    }

    /// What `client_id` presenting this token at `now` gets, with `grace` the retry window
    /// (zero: none). `now` is a clock reading taken after this record was read, so it is never
    /// earlier than a consume the record shows.
    /// `open` unseals a successor (`None` if it cannot be opened); it is only called for a
    /// retry inside the window whose successor is unused, and a successor that does not open
    /// is reuse. The order is the security argument: another client's token is refused
    /// unseen; a consumed token is judged (retry or reuse) before anything about the request
    /// is looked at, so a thief learns nothing from a crafted one; a successor is handed out
    /// only under the rules it would meet itself.
    pub fn judge(
        &self,
        client_id: &str,
        now: OffsetDateTime,
        grace: Duration,
        open: impl FnOnce(&[u8]) -> Option<String>,
    ) -> Verdict<'_> {
        if !self.owned_by(client_id) || self.session != SessionState::Live {
            return Verdict::Reject;
        }
        match &self.state {
            RefreshTokenState::Revoked { .. } => Verdict::Reject,
            RefreshTokenState::Consumed { at, successor } => {
                // `now` must be read after the consume was recorded (the caller's duty), or a
                // presentation that lost the race to consume would fall inside any window. A
                // window of 0 is none: every presentation after the first is reuse.
                let within_window = !grace.is_zero() && now < *at + grace;
                let earned = successor
                    .sealed
                    .as_deref()
                    .filter(|_| within_window && successor.unused)
                    .and_then(open);
                let Some(earned) = earned else {
                    return Verdict::Reuse {
                        consumed_at: *at,
                        within_window,
                    };
                };
                if self.user_disabled {
                    Verdict::RevokeDisabled
                } else if now >= self.session_expires_at {
                    Verdict::Reject
                } else {
                    Verdict::Retry {
                        successor: earned,
                        granted_scope: successor.scope.as_deref().unwrap_or(&self.scope),
                    }
                }
            }
            RefreshTokenState::Valid => {
                if self.user_disabled {
                    Verdict::RevokeDisabled
                } else if now >= self.expires_at() {
                    Verdict::Reject
                } else {
                    Verdict::Rotate
                }
            }
        }
    }

    /// RFC 7662: active exactly when its own client presenting it would get it rotated.
    pub fn is_active(&self, now: OffsetDateTime) -> bool {
        self.judge(&self.client_id, now, Duration::ZERO, |_| None) == Verdict::Rotate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(10);

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_700_000_000 + seconds).unwrap()
    }

    fn token(state: RefreshTokenState) -> RefreshTokenRecord {
        RefreshTokenRecord {
            session_id: uuid::Uuid::nil(),
            token_digest: [0; 32],
            scope: "read write".to_owned(),
            created_at: at(0),
            idle_expires_at: at(1_000),
            state,
            client_id: "app".to_owned(),
            user_id: uuid::Uuid::nil(),
            session_expires_at: at(2_000),
            session: SessionState::Live,
            user_disabled: false,
            held_roles: Default::default(),
            successor_status: None,
        }
    }

    fn consumed(at_s: i64, sealed: bool, unused: bool, scope: Option<&str>) -> RefreshTokenState {
        RefreshTokenState::Consumed {
            at: at(at_s),
            successor: Successor {
                sealed: sealed.then(|| b"sealed".to_vec()),
                unused,
                scope: scope.map(str::to_owned),
            },
        }
    }

    fn opens(_: &[u8]) -> Option<String> {
        Some("tsr_successor".to_owned())
    }

    fn fails(_: &[u8]) -> Option<String> {
        None
    }

    fn retry(scope: &str) -> Verdict<'_> {
        Verdict::Retry {
            successor: "tsr_successor".to_owned(),
            granted_scope: scope,
        }
    }

    fn reuse(consumed_at: i64, within_window: bool) -> Verdict<'static> {
        Verdict::Reuse {
            consumed_at: at(consumed_at),
            within_window,
        }
    }

    fn disabled(mut t: RefreshTokenRecord) -> RefreshTokenRecord {
        t.user_disabled = true;
        t
    }

    fn session_revoked(mut t: RefreshTokenRecord) -> RefreshTokenRecord {
        t.session = SessionState::Revoked { at: at(50) };
        t
    }

    fn session_ends(seconds: i64, mut t: RefreshTokenRecord) -> RefreshTokenRecord {
        t.session_expires_at = at(seconds);
        t
    }

    type Open = fn(&[u8]) -> Option<String>;

    #[test]
    fn the_verdict_table() {
        use RefreshTokenState::{Revoked, Valid};
        let revoked = Revoked { at: at(50) };
        // (case, token, presenting client, now, unsealer, verdict); the window is 10 s, the
        // idle expiry at 1,000 s, the session's at 2,000 s.
        #[rustfmt::skip]
        let cases: Vec<(&str, RefreshTokenRecord, &str, i64, Open, Verdict<'static>)> = vec![
            ("valid", token(Valid), "app", 100, opens, Verdict::Rotate),
            ("another client's", token(Valid), "other", 100, opens, Verdict::Reject),
            ("idle-expired", token(Valid), "app", 1_000, opens, Verdict::Reject),
            ("session expired", session_ends(500, token(Valid)), "app", 500, opens, Verdict::Reject),
            ("user disabled", disabled(token(Valid)), "app", 100, opens, Verdict::RevokeDisabled),
            ("user disabled, expired", disabled(token(Valid)), "app", 1_500, opens, Verdict::RevokeDisabled),
            ("revoked", token(revoked.clone()), "app", 100, opens, Verdict::Reject),
            ("session revoked", session_revoked(token(Valid)), "app", 100, opens, Verdict::Reject),
            ("consumed, session revoked", session_revoked(token(consumed(95, true, true, None))), "app", 100, opens, Verdict::Reject),
            ("retry in the window", token(consumed(95, true, true, None)), "app", 100, opens, retry("read write")),
            ("retry, narrowed successor", token(consumed(95, true, true, Some("read"))), "app", 100, opens, retry("read")),
            ("retry past the idle expiry", token(consumed(995, true, true, None)), "app", 1_001, opens, retry("read write")),
            ("retry, session expired", session_ends(100, token(consumed(95, true, true, None))), "app", 100, opens, Verdict::Reject),
            ("retry, user disabled", disabled(token(consumed(95, true, true, None))), "app", 100, opens, Verdict::RevokeDisabled),
            ("window closed", token(consumed(90, true, true, None)), "app", 100, opens, reuse(90, false)),
            ("successor used", token(consumed(95, true, false, None)), "app", 100, opens, reuse(95, true)),
            ("successor erased", token(consumed(95, false, true, None)), "app", 100, opens, reuse(95, true)),
            ("successor does not open", token(consumed(95, true, true, None)), "app", 100, fails, reuse(95, true)),
            ("reuse, user disabled", disabled(token(consumed(90, true, true, None))), "app", 100, opens, reuse(90, false)),
            ("reuse by another client", token(consumed(95, true, true, None)), "other", 100, opens, Verdict::Reject),
        ];
        for (case, token, client, now, open, expected) in cases {
            assert_eq!(
                token.judge(client, at(now), GRACE, open),
                expected,
                "{case}"
            );
        }
    }

    #[test]
    fn grace_zero_has_no_window() {
        // (case, token, now, verdict) with a window of 0: every presentation of a consumed token
        // is reuse, whatever the clock reads and whatever is sealed.
        #[rustfmt::skip]
        let cases: Vec<(&str, RefreshTokenRecord, i64, Verdict<'static>)> = vec![
            ("valid", token(RefreshTokenState::Valid), 100, Verdict::Rotate),
            ("consumed at this very instant", token(consumed(100, true, true, None)), 100, reuse(100, false)),
            ("consumed a second ago", token(consumed(99, true, true, None)), 100, reuse(99, false)),
            ("a reading older than the consume", token(consumed(100, true, true, None)), 99, reuse(100, false)),
            ("nothing sealed", token(consumed(100, false, true, None)), 100, reuse(100, false)),
        ];
        for (case, token, now, expected) in cases {
            assert_eq!(
                token.judge("app", at(now), Duration::ZERO, opens),
                expected,
                "{case}"
            );
        }
    }

    #[test]
    fn active_is_what_its_own_client_could_rotate() {
        assert!(token(RefreshTokenState::Valid).is_active(at(100)));
        assert!(!token(RefreshTokenState::Valid).is_active(at(1_000)));
        assert!(!token(consumed(95, true, true, None)).is_active(at(100)));
        assert!(!token(RefreshTokenState::Revoked { at: at(50) }).is_active(at(100)));
        assert!(!disabled(token(RefreshTokenState::Valid)).is_active(at(100)));
        assert_eq!(token(RefreshTokenState::Valid).expires_at(), at(1_000));
    }
}
