-- Browser sign-in (authorization code with PKCE, RFC 6749 §4.1, RFC 7636): clients' redirect
-- URIs and first-party mark, browser sessions, and authorization codes.
-- Exact strings (RFC 9700 §4.1.3); http only for the loopback addresses, any port (RFC 8252 §7.3).
alter table client add column redirect_uris jsonb not null default '[]';
-- A first-party client may skip the consent page (set by an admin only).
alter table client add column first_party boolean not null default false;

-- A signed-in browser: the cookie value is 256 random bits, only its SHA-256 stored.
create table browser_session (
    browser_session_id uuid primary key,
    token_digest       bytea not null unique,
    user_id            uuid not null references user_account (user_id) on delete cascade,
    source_addr        text,
    created_at         timestamptz not null,
    expires_at         timestamptz not null,   -- absolute, never extended
    last_seen_at       timestamptz not null,   -- the idle clock
    ended_at           timestamptz             -- logout, disabled user, subject revocation, new password
);
create index browser_session_by_user on browser_session (user_id);
create index browser_session_by_expiry on browser_session (expires_at);

-- An authorization code (`tsc_` + 256 random bits), by its SHA-256; single use.
create table authorization_code (
    code_digest        bytea primary key,
    client_id          text not null references client (client_id) on delete cascade,
    user_id            uuid not null references user_account (user_id) on delete cascade,
    browser_session_id uuid references browser_session (browser_session_id) on delete set null,
    redirect_uri       text not null,
    code_challenge     text not null,          -- S256 only (RFC 7636 §4.2)
    scope              text not null,          -- what the user approved
    created_at         timestamptz not null,
    expires_at         timestamptz not null,
    used_at            timestamptz,
    -- The login session its exchange created: a replay of the code revokes it (RFC 6749 §10.5).
    session_id         uuid references session (session_id) on delete set null
);
create index authorization_code_by_expiry on authorization_code (expires_at);
