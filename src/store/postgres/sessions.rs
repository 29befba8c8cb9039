//! Sessions and refresh tokens on PostgreSQL: a login waits on the user row an offboarding locks, and rotation is one statement for a whole batch that locks the sessions' rows in order. Uses: model.

use super::PgStore;
use crate::store::sql::sessions::{find_refresh, session_store};
use crate::store::{Consumed, Rotation, StoreError};

/// Carries out a batch of rotations, one row of the parallel arrays each, in one statement (so
/// one round trip and one implicit transaction): lock the batch's live sessions in session-id
/// order (two batches sharing sessions, on one instance or two, cannot deadlock; an offboarding
/// that revoked a session first is seen), consume each presented token only if it is still
/// live, and for each consumption that happened insert the successor and the rotation's audit
/// event and erase the predecessor's sealed successor (the presented token: now that it is
/// used, a retry of the predecessor is reuse and never gets it back). A rotation queued behind
/// another of its session (another batch, another instance) finds the token consumed when its
/// update re-checks the row, and writes nothing. Of two rows presenting one token, the update
/// consumes it once and returns one of them. Returns the (1-based) rows that rotated.
const CONSUME: &str = "with input as materialized (
         select * from unnest($1::uuid[], $2::bytea[], $3::timestamptz[], $4::bytea[],
                              $5::bytea[], $6::text[], $7::timestamptz[], $8::timestamptz[],
                              $9::bigint[], $10::bigint[], $11::timestamptz[], $12::text[],
                              $13::text[], $14::text[], $15::text[], $16::text[], $17::text[])
             with ordinality as i(session_id, digest, consumed_at, next_digest, sealed, scope,
                                  created_at, idle_expires_at, status_list_id, status_idx,
                                  audit_at, event_type, actor, subject, client_id, source_addr,
                                  detail, n)
     ), live as materialized (
         select session_id from session
         where session_id in (select session_id from input) and revoked_at is null
         order by session_id
         for update
     ), consumed as (
         update refresh_token t
         set consumed_at = i.consumed_at, successor_digest = i.next_digest,
             successor_ciphertext = i.sealed
         from input i
         where t.session_id = i.session_id and t.token_digest = i.digest
           and t.session_id in (select session_id from live)
           and t.consumed_at is null and t.revoked_at is null
         returning i.n
     ), rotated as materialized (
         select i.* from input i join consumed c on c.n = i.n
     ), spent as (
         update refresh_token t set successor_ciphertext = null
         from rotated r
         where t.session_id = r.session_id and t.successor_digest = r.digest
           and t.successor_ciphertext is not null
     ), audited as (
         insert into audit_event (created_at, event_type, actor, subject, client_id, session_id,
             source_addr, detail)
         select audit_at, event_type, actor, subject, client_id, session_id, source_addr,
             detail::jsonb
         from rotated
     ), inserted as (
         insert into refresh_token (session_id, token_digest, scope, created_at, idle_expires_at,
             access_status_list_id, access_status_idx)
         select session_id, next_digest, scope, created_at, idle_expires_at, status_list_id,
             status_idx
         from rotated
     )
     select n from rotated";

impl PgStore {
    /// The successor through a lateral subquery that cannot be flattened (`limit 1`; the key
    /// is unique anyway), so it is always a probe of the primary key by (session, digest).
    /// A plain left join lets the planner derive `session_id = $1` for it and, while the
    /// table's statistics are young, scan every token of the session: a cost that grows with
    /// the session's chain of rotations.
    pub(super) const FIND_REFRESH: &str = find_refresh!(
        "left join lateral (select n.token_digest, n.consumed_at, n.revoked_at, n.scope,
                 n.access_status_list_id, n.access_status_idx
             from refresh_token n
             where n.session_id = t.session_id and n.token_digest = t.successor_digest
             limit 1) n on true"
    );

    /// Waits for an offboarding of the user or the client in progress (each locks its row
    /// first), then sees its outcome. Always the user row, then the client row.
    pub(super) const USER_ENABLED: &str =
        "select coalesce((select not disabled from user_account where user_id = $1 for share)
            and (select not disabled from client where client_id = $2 for share), false)";

    async fn consume(&self, rotations: &[Rotation]) -> Result<Vec<Consumed>, StoreError> {
        // One array per column, a rotation per row.
        fn column<'r, T>(rotations: &'r [Rotation], f: impl Fn(&'r Rotation) -> T) -> Vec<T> {
            rotations.iter().map(f).collect()
        }
        let rotated: Vec<i64> = sqlx::query_scalar(CONSUME)
            .bind(column(rotations, |r| r.successor.session_id))
            .bind(column(rotations, |r| &r.digest[..]))
            .bind(column(rotations, |r| r.now))
            .bind(column(rotations, |r| &r.successor.token_digest[..]))
            .bind(column(rotations, |r| r.successor_ciphertext.as_deref()))
            .bind(column(rotations, |r| r.successor.scope.as_str()))
            .bind(column(rotations, |r| r.successor.created_at))
            .bind(column(rotations, |r| r.successor.idle_expires_at))
            .bind(column(rotations, |r| {
                r.successor.access_status.map(|s| s.list_id)
            }))
            .bind(column(rotations, |r| {
                r.successor.access_status.map(|s| s.idx)
            }))
            .bind(column(rotations, |r| r.audit.created_at))
            .bind(column(rotations, |r| r.audit.event_type))
            .bind(column(rotations, |r| r.audit.actor.as_deref()))
            .bind(column(rotations, |r| r.audit.subject.as_deref()))
            .bind(column(rotations, |r| r.audit.client_id.as_deref()))
            .bind(column(rotations, |r| r.audit.source_addr.as_deref()))
            .bind(column(rotations, |r| r.audit.detail.to_string()))
            .fetch_all(&self.pool)
            .await?;
        let mut outcomes = vec![Consumed::NotLive; rotations.len()];
        for n in rotated {
            let slot = usize::try_from(n - 1)
                .ok()
                .and_then(|i| outcomes.get_mut(i))
                .ok_or(StoreError::Other {
                    kind: "a rotation row out of range",
                })?;
            *slot = Consumed::Rotated;
        }
        Ok(outcomes)
    }
}

session_store!(PgStore);
