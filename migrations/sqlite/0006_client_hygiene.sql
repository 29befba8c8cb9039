-- Client credential hygiene: mirrors migrations/postgres/0005_client_hygiene.sql (times in Unix
-- milliseconds).
alter table client add column secret_created_at integer;
update client set secret_created_at = coalesce(secret_rotated_at, created_at) where not is_public;
-- Seconds; null: TESSERA_CLIENT_SECRET_MAX_AGE (if set) applies.
alter table client add column secret_max_age integer check (secret_max_age > 0);
-- The secret a rotation replaced, accepted beside the new one until previous_secret_expires_at.
alter table client add column previous_secret_digest blob;
alter table client add column previous_secret_phc text;
alter table client add column previous_secret_expires_at integer;
-- The last successful authentication, merged with max() so instances converge.
alter table client add column last_used_at integer;

create table client_scope_usage (
    client_id      text not null references client (client_id) on delete cascade,
    scope          text not null,
    last_issued_at integer not null,
    primary key (client_id, scope)
) strict;
