-- Tessera schema for PostgreSQL, the production store. Several instances may share it.
--
-- Nothing secret is stored in clear: server-generated client secrets and refresh tokens are kept
-- as SHA-256 digests, human-chosen secrets as argon2id PHC strings, and private signing keys as
-- AES-256-GCM ciphertext under the master key (which never enters the database).

create table client (
    client_id         text primary key,
    name              text,
    is_public         boolean not null default false,
    -- SHA-256 of a server-generated `tss_` secret (256 random bits: brute force is out of reach).
    secret_digest     bytea,
    -- argon2id PHC string of an operator-chosen secret (the configured bootstrap admin only).
    secret_phc        text,
    grant_types       jsonb not null default '[]',
    scopes            jsonb not null default '[]',
    audiences         jsonb not null default '[]',
    is_admin          boolean not null default false,
    can_introspect    boolean not null default false,
    disabled          boolean not null default false,
    secret_rotated_at timestamptz,
    created_at        timestamptz not null,
    updated_at        timestamptz not null,
    constraint client_public_has_no_secret
        check (not is_public or (secret_digest is null and secret_phc is null)),
    constraint client_confidential_has_a_secret
        check (is_public or secret_digest is not null or secret_phc is not null)
);

-- "user" is reserved in SQL, hence user_account.
create table user_account (
    user_id       uuid primary key,              -- the `sub` of the user's tokens
    username      text not null,                 -- as registered, for display
    username_key  text not null unique,          -- NFKC + case fold: one account per visual name
    password_phc  text not null,                 -- argon2id PHC string
    disabled      boolean not null default false,
    created_at    timestamptz not null,
    updated_at    timestamptz not null
);

create table signing_key (
    kid                    text primary key,     -- RFC 7638 JWK thumbprint
    alg                    text not null check (alg in ('ES256', 'EdDSA', 'RS256', 'PS256')),
    state                  text not null check (state in ('next', 'active', 'retired', 'revoked')),
    public_jwk             jsonb not null,
    -- nonce || AES-256-GCM ciphertext and tag of the private JWK, with the kid as associated data.
    private_key_ciphertext bytea not null,
    created_at             timestamptz not null,
    activated_at           timestamptz,
    retired_at             timestamptz,
    revoked_at             timestamptz
);
-- At most one key signs and at most one waits to sign, whatever several instances race to do.
create unique index signing_key_one_active on signing_key (state) where state = 'active';
create unique index signing_key_one_next on signing_key (state) where state = 'next';

-- A ciphertext under the master key, written once: a wrong master key is detected at start-up
-- instead of producing keys nobody can decrypt.
create table master_key_check (
    master_key_check_id integer primary key check (master_key_check_id = 1),
    ciphertext          bytea not null,
    created_at          timestamptz not null
);

-- A session is the family of refresh tokens descended from one login; its id is the `sid` claim.
create table session (
    session_id     uuid primary key,
    client_id      text not null references client (client_id) on delete cascade,
    user_id        uuid not null references user_account (user_id) on delete cascade,
    scope          text not null,
    created_at     timestamptz not null,
    expires_at     timestamptz not null,         -- absolute expiry, never extended by rotation
    revoked_at     timestamptz,
    revoked_reason text
);
create index session_by_user on session (user_id);
create index session_by_client on session (client_id);
create index session_by_expiry on session (expires_at);

create table refresh_token (
    session_id           uuid not null references session (session_id) on delete cascade,
    token_digest         bytea not null,         -- SHA-256 of the whole `tsr_` token
    scope                text not null,
    created_at           timestamptz not null,
    idle_expires_at      timestamptz not null,
    consumed_at          timestamptz,
    successor_digest     bytea,
    -- The successor, encrypted under the master key, kept only for the retry window.
    successor_ciphertext bytea,
    revoked_at           timestamptz,
    primary key (session_id, token_digest),
    constraint refresh_token_successor_when_consumed
        check (consumed_at is not null or (successor_digest is null and successor_ciphertext is null))
);
-- A session has at most one live refresh token, enforced by the database itself.
create unique index refresh_token_one_live on refresh_token (session_id)
    where consumed_at is null and revoked_at is null;
create index refresh_token_idle_expires on refresh_token (idle_expires_at);

-- Revocation state, mirrored in memory on every instance. kind:
--   jti      one access token, until its exp
--   session  every token carrying the sid
--   subject  tokens of the subject issued at or before revoked_at
--   client   tokens of the client issued at or before revoked_at
--   kid      every token signed by the key
create table revocation (
    revocation_id bigint generated always as identity primary key,
    kind          text not null check (kind in ('jti', 'session', 'subject', 'client', 'kid')),
    value         text not null,
    revoked_at    timestamptz not null,
    expires_at    timestamptz not null,          -- no token it can match lives past this
    actor         text,
    created_at    timestamptz not null
);
create index revocation_expires on revocation (expires_at);
create index revocation_kind_value on revocation (kind, value);

-- Security events. Never holds a secret, a password or a token.
create table audit_event (
    audit_event_id bigint generated always as identity primary key,
    created_at     timestamptz not null,
    event_type     text not null,
    actor          text,
    subject        text,
    client_id      text,
    session_id     uuid,
    source_addr    text,
    detail         jsonb not null default '{}'
);
create index audit_event_created on audit_event (created_at);
create index audit_event_subject on audit_event (subject, audit_event_id);
create index audit_event_client on audit_event (client_id, audit_event_id);
create index audit_event_type on audit_event (event_type, audit_event_id);

-- Failed-attempt throttling shared by every instance. The key is a digest of the normalised
-- username or client id, so no username is stored here.
create table login_throttle (
    throttle_key  bytea primary key,
    failures      integer not null,
    window_start  timestamptz not null,
    blocked_until timestamptz
);

-- The change feed: a version per topic, bumped in the transaction that changes the topic and
-- announced with NOTIFY; instances reload a topic whose version moved.
create table change_feed (
    topic      text primary key check (topic in ('keys', 'clients', 'users', 'revocations')),
    version    bigint not null,
    changed_at timestamptz not null
);
insert into change_feed (topic, version, changed_at) values
    ('keys', 0, now()), ('clients', 0, now()), ('users', 0, now()), ('revocations', 0, now());
