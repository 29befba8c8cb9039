-- Roles: named scope sets. A user holds the union of its roles' scopes and nothing else.
create table role (
    name        text primary key,                -- [A-Za-z0-9_.:-]{1,64}
    -- Space-separated RFC 6749 scope-tokens (none contains a space, '"' or '\'), so the
    -- roles a user holds aggregate into one string on the refresh path.
    scopes      text not null,
    description text,
    created_at  integer not null,
    updated_at  integer not null
) strict;

create table user_role (
    user_id   text not null references user_account (user_id) on delete cascade,
    role_name text not null references role (name) on delete cascade,
    primary key (user_id, role_name)
) strict;
create index user_role_by_role on user_role (role_name);

-- A lost scope is one revocation entry, whatever the number of users: `role` (a role's scopes
-- shrank, or it was deleted: tokens naming the role in their `roles` claim) or `subject_scope`
-- (one user lost scopes), each cutting off tokens issued before it that carry one of `scopes`.
-- SQLite cannot alter a check constraint: the table is rebuilt, ids kept.
create table revocation_new (
    revocation_id integer primary key autoincrement,
    kind          text not null
        check (kind in ('jti', 'session', 'subject', 'client', 'kid', 'role', 'subject_scope')),
    value         text not null,
    revoked_at    integer not null,
    expires_at    integer not null,
    actor         text,
    created_at    integer not null,
    scopes        text
) strict;
insert into revocation_new (revocation_id, kind, value, revoked_at, expires_at, actor, created_at)
    select revocation_id, kind, value, revoked_at, expires_at, actor, created_at from revocation;
drop table revocation;
alter table revocation_new rename to revocation;
create index revocation_expires on revocation (expires_at);
create index revocation_kind_value on revocation (kind, value);
