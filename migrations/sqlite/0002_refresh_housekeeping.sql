-- Mirrors migrations/postgres/0002_refresh_housekeeping.sql.
create index refresh_token_pending_erase on refresh_token (consumed_at)
    where successor_ciphertext is not null;
create index session_by_revocation on session (revoked_at) where revoked_at is not null;
