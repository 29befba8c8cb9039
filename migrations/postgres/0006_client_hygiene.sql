-- Client credential hygiene: when the secret was made and how long it may live, the previous
-- secret during a rotation's overlap, and when the client was last used and each of its scopes
-- last issued (written in batches, at most once a minute per client and instance).
alter table client add column secret_created_at timestamptz;
update client set secret_created_at = coalesce(secret_rotated_at, created_at) where not is_public;
-- Seconds; null: TESSERA_CLIENT_SECRET_MAX_AGE (if set) applies.
alter table client add column secret_max_age bigint check (secret_max_age > 0);
-- The secret a rotation replaced, accepted beside the new one until previous_secret_expires_at.
alter table client add column previous_secret_digest bytea;
alter table client add column previous_secret_phc text;
alter table client add column previous_secret_expires_at timestamptz;
-- The last successful authentication, merged with greatest() so instances converge.
alter table client add column last_used_at timestamptz;

create table client_scope_usage (
    client_id      text not null references client (client_id) on delete cascade,
    scope          text not null,
    last_issued_at timestamptz not null,
    primary key (client_id, scope)
);
