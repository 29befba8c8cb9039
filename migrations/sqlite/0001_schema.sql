-- Tessera schema for SQLite, the embedded single-instance store. It mirrors
-- migrations/postgres/0001_schema.sql (same tables, columns and invariants) with SQLite types:
-- times are integer Unix milliseconds (UTC) so that comparisons are numeric, UUIDs are
-- hyphenated text, JSON is text, and digests and ciphertexts are blobs.

create table client (
    client_id         text primary key,
    name              text,
    is_public         integer not null default 0,
    secret_digest     blob,
    secret_phc        text,
    grant_types       text not null default '[]',
    scopes            text not null default '[]',
    audiences         text not null default '[]',
    is_admin          integer not null default 0,
    can_introspect    integer not null default 0,
    disabled          integer not null default 0,
    secret_rotated_at integer,
    created_at        integer not null,
    updated_at        integer not null,
    constraint client_public_has_no_secret
        check (not is_public or (secret_digest is null and secret_phc is null)),
    constraint client_confidential_has_a_secret
        check (is_public or secret_digest is not null or secret_phc is not null)
) strict;

create table user_account (
    user_id       text primary key,
    username      text not null,
    username_key  text not null unique,
    password_phc  text not null,
    disabled      integer not null default 0,
    created_at    integer not null,
    updated_at    integer not null
) strict;

create table signing_key (
    kid                    text primary key,
    alg                    text not null check (alg in ('ES256', 'EdDSA', 'RS256', 'PS256')),
    state                  text not null check (state in ('next', 'active', 'retired', 'revoked')),
    public_jwk             text not null,
    private_key_ciphertext blob not null,
    created_at             integer not null,
    activated_at           integer,
    retired_at             integer,
    revoked_at             integer
) strict;
create unique index signing_key_one_active on signing_key (state) where state = 'active';
create unique index signing_key_one_next on signing_key (state) where state = 'next';

create table master_key_check (
    master_key_check_id integer primary key check (master_key_check_id = 1),
    ciphertext          blob not null,
    created_at          integer not null
) strict;

create table session (
    session_id     text primary key,
    client_id      text not null references client (client_id) on delete cascade,
    user_id        text not null references user_account (user_id) on delete cascade,
    scope          text not null,
    created_at     integer not null,
    expires_at     integer not null,
    revoked_at     integer,
    revoked_reason text
) strict;
create index session_by_user on session (user_id);
create index session_by_client on session (client_id);
create index session_by_expiry on session (expires_at);

create table refresh_token (
    session_id           text not null references session (session_id) on delete cascade,
    token_digest         blob not null,
    scope                text not null,
    created_at           integer not null,
    idle_expires_at      integer not null,
    consumed_at          integer,
    successor_digest     blob,
    successor_ciphertext blob,
    revoked_at           integer,
    primary key (session_id, token_digest),
    constraint refresh_token_successor_when_consumed
        check (consumed_at is not null or (successor_digest is null and successor_ciphertext is null))
) strict;
create unique index refresh_token_one_live on refresh_token (session_id)
    where consumed_at is null and revoked_at is null;
create index refresh_token_idle_expires on refresh_token (idle_expires_at);

create table revocation (
    revocation_id integer primary key autoincrement,
    kind          text not null check (kind in ('jti', 'session', 'subject', 'client', 'kid')),
    value         text not null,
    revoked_at    integer not null,
    expires_at    integer not null,
    actor         text,
    created_at    integer not null
) strict;
create index revocation_expires on revocation (expires_at);
create index revocation_kind_value on revocation (kind, value);

create table audit_event (
    audit_event_id integer primary key autoincrement,
    created_at     integer not null,
    event_type     text not null,
    actor          text,
    subject        text,
    client_id      text,
    session_id     text,
    source_addr    text,
    detail         text not null default '{}'
) strict;
create index audit_event_created on audit_event (created_at);
create index audit_event_subject on audit_event (subject, audit_event_id);
create index audit_event_client on audit_event (client_id, audit_event_id);
create index audit_event_type on audit_event (event_type, audit_event_id);

create table login_throttle (
    throttle_key  blob primary key,
    failures      integer not null,
    window_start  integer not null,
    blocked_until integer
) strict;

create table change_feed (
    topic      text primary key check (topic in ('keys', 'clients', 'users', 'revocations')),
    version    integer not null,
    changed_at integer not null
) strict;
insert into change_feed (topic, version, changed_at) values
    ('keys', 0, 0), ('clients', 0, 0), ('users', 0, 0), ('revocations', 0, 0);
