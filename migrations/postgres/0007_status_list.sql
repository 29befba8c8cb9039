-- Token Status List (draft-ietf-oauth-status-list). Every access token names a (list, index);
-- one list per signing key at a time, so revoking a key marks whole lists and nothing else.
create table status_list (
    status_list_id bigint generated always as identity primary key,
    kid            text not null,               -- the key whose tokens carry this list's indices
    size           bigint not null,             -- entries (bits) in the list, fixed at creation
    next_idx       bigint not null,             -- indices below it are handed out (leased in blocks)
    token          text,                        -- the signed statuslist+jwt every instance serves
    etag           text,
    built_version  bigint not null default -1,  -- change-feed version the stored token reflects
    built_at       timestamptz,
    created_at     timestamptz not null
);
create index status_list_by_kid on status_list (kid, status_list_id);

-- Client-credentials tokens: one block of indices per client, list and minute; a token's index
-- is the block's base plus its issue second within the minute.
create table status_block (
    status_list_id bigint not null references status_list (status_list_id) on delete cascade,
    client_id      text not null,
    period_start   bigint not null,             -- unix seconds, a multiple of the period
    base_idx       bigint not null,
    created_at     timestamptz not null,
    primary key (status_list_id, client_id, period_start)
);

-- Indices set to 1 by a revocation of one access token (RFC 7009, by jti) or by a role change.
create table status_mark (
    status_list_id bigint not null references status_list (status_list_id) on delete cascade,
    status_idx     bigint not null,
    created_at     timestamptz not null,
    primary key (status_list_id, status_idx)
);

-- One builder at a time across instances: a lease on this single row.
create table status_builder (
    status_builder_id integer primary key check (status_builder_id = 1),
    holder            text,
    lease_until       timestamptz not null
);
insert into status_builder (status_builder_id, holder, lease_until) values (1, null, 'epoch');

-- The index of the access token minted with a login, and of the one minted when a refresh
-- token was consumed (handed out again with a retry of that rotation).
alter table session add column status_list_id bigint, add column status_idx bigint;
alter table refresh_token add column access_status_list_id bigint,
    add column access_status_idx bigint;
create index session_by_status_list on session (status_list_id) where status_list_id is not null;
create index refresh_token_by_status_list on refresh_token (access_status_list_id)
    where access_status_list_id is not null;
