-- Browser sign-in: mirrors migrations/postgres/0008_authorization_code.sql (times in Unix
-- milliseconds, uuids as text, JSON as text).
alter table client add column redirect_uris text not null default '[]';
alter table client add column first_party integer not null default 0;

create table browser_session (
    browser_session_id text primary key,
    token_digest       blob not null unique,
    user_id            text not null references user_account (user_id) on delete cascade,
    source_addr        text,
    created_at         integer not null,
    expires_at         integer not null,
    last_seen_at       integer not null,
    ended_at           integer
) strict;
create index browser_session_by_user on browser_session (user_id);
create index browser_session_by_expiry on browser_session (expires_at);

create table authorization_code (
    code_digest        blob primary key,
    client_id          text not null references client (client_id) on delete cascade,
    user_id            text not null references user_account (user_id) on delete cascade,
    browser_session_id text references browser_session (browser_session_id) on delete set null,
    redirect_uri       text not null,
    code_challenge     text not null,
    scope              text not null,
    created_at         integer not null,
    expires_at         integer not null,
    used_at            integer,
    session_id         text references session (session_id) on delete set null
) strict;
create index authorization_code_by_expiry on authorization_code (expires_at);
