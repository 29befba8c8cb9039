-- Fills Tessera's session and refresh_token tables (the schema of migrations/postgres) with
-- other people's refresh tokens, so a refresh benchmark runs against realistic table sizes:
--
--   psql -v tokens=10000000 -f benches/refresh_fill.sql postgres://postgres@127.0.0.1:5432/DB
--
-- Used by scripts/refresh_load.sh on the server's own database (after `tessera migrate`, before
-- the server starts) and, through benches/refresh_pgbench_setup.sql, on pgbench's scratch
-- database. Variables: tokens (refresh_token rows, default 1000000), per_session (tokens per
-- session, default 5).
--
-- Shape: `tokens / per_session` sessions of one filler client (`bench-filler`), spread over
-- `sessions / 20` users, each session a chain of `per_session` tokens: the older ones consumed
-- (pointing at their successor, the retry-window copy already erased), the newest live. Every
-- date lies in the last 10 days and every expiry in the future, so housekeeping deletes none of
-- it during a run. Session ids are md5('bench-session-' || i)::uuid (i = 1..sessions), which
-- spreads them like random v4 ids and lets benches/refresh.pgbench address session i; token
-- digests are SHA-256 of the session id and the token's place in the chain (32 bytes,
-- uniformly spread like real digests). Sessions are inserted in id order and tokens read back
-- in that order, so the indexes are built mostly sequentially.
\set ON_ERROR_STOP on
\if :{?tokens}
\else
    \set tokens 1000000
\endif
\if :{?per_session}
\else
    \set per_session 5
\endif

select (:tokens + :per_session - 1) / :per_session as sessions,
       greatest(1, (:tokens / :per_session) / 20) as users
\gset
\echo filling :sessions sessions of :per_session tokens (:users users)

set work_mem = '256MB';
set maintenance_work_mem = '512MB';
set synchronous_commit = off;

insert into client (client_id, name, is_public, secret_digest, grant_types, scopes, audiences,
                    created_at, updated_at)
values ('bench-filler', 'benchmark filler', false, sha256('bench-filler-unused-secret'::bytea),
        '["password","refresh_token"]', '["read"]', '["https://api.example.com"]', now(), now())
on conflict (client_id) do nothing;

-- A syntactically valid argon2id PHC string nobody's password matches; never verified here.
insert into user_account (user_id, username, username_key, password_phc, disabled, created_at,
                          updated_at)
select md5('bench-user-' || u)::uuid, 'bench-user-' || u, 'bench-user-' || u,
       '$argon2id$v=19$m=19456,t=2,p=1$YmVuY2gtZmlsbGVyLXNhbHQ$'
           || rtrim(encode(sha256(('bench-user-' || u)::bytea), 'base64'), '='),
       false, now() - interval '30 days', now() - interval '30 days'
from generate_series(1, :users) u
on conflict do nothing;

insert into session (session_id, client_id, user_id, scope, created_at, expires_at)
select id, 'bench-filler', md5('bench-user-' || (1 + i % :users))::uuid, 'read', created,
       created + interval '90 days'
from (select i, md5('bench-session-' || i)::uuid as id,
             now() - random() * interval '10 days' as created
      from generate_series(1, :sessions) i) s
order by id;

-- Token k of a session was issued at created + (k - 1) * step and consumed when token k + 1
-- was issued; the last one is live.
insert into refresh_token (session_id, token_digest, scope, created_at, idle_expires_at,
                           consumed_at, successor_digest)
select s.session_id,
       sha256(convert_to(s.session_id::text || '/' || k, 'UTF8')),
       'read',
       s.created_at + (k - 1) * (now() - s.created_at) / :per_session,
       s.created_at + (k - 1) * (now() - s.created_at) / :per_session + interval '14 days',
       case when k < :per_session
            then s.created_at + k * (now() - s.created_at) / :per_session end,
       case when k < :per_session
            then sha256(convert_to(s.session_id::text || '/' || (k + 1), 'UTF8')) end
from session s
cross join generate_series(1, :per_session) k
where s.client_id = 'bench-filler';

vacuum (analyze) client, user_account, session, refresh_token;
checkpoint;

select count(*) as refresh_tokens,
       count(*) filter (where consumed_at is null and revoked_at is null) as live,
       pg_size_pretty(pg_total_relation_size('refresh_token')) as refresh_token_size,
       pg_size_pretty(pg_total_relation_size('session')) as session_size
from refresh_token;
