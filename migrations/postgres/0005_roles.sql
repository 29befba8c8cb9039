-- Roles: named scope sets. A user holds the union of its roles' scopes and nothing else.
create table role (
    name        text primary key,                -- [A-Za-z0-9_.:-]{1,64}
    -- Space-separated RFC 6749 scope-tokens (none contains a space, '"' or '\'), so the
    -- roles a user holds aggregate into one string on the refresh path.
    scopes      text not null,
    description text,
    created_at  timestamptz not null,
    updated_at  timestamptz not null
);

create table user_role (
    user_id   uuid not null references user_account (user_id) on delete cascade,
    role_name text not null references role (name) on delete cascade,
    primary key (user_id, role_name)
);
create index user_role_by_role on user_role (role_name);

-- A lost scope is one revocation entry, whatever the number of users: `role` (a role's scopes
-- shrank, or it was deleted: tokens naming the role in their `roles` claim) or `subject_scope`
-- (one user lost scopes), each cutting off tokens issued before it that carry one of `scopes`.
alter table revocation drop constraint revocation_kind_check;
alter table revocation add constraint revocation_kind_check
    check (kind in ('jti', 'session', 'subject', 'client', 'kid', 'role', 'subject_scope'));
alter table revocation add column scopes text;
