-- Mirrors migrations/postgres/0011_sealed_by_successor.sql.
drop index refresh_token_sealed_by_session;
create index refresh_token_sealed_by_successor on refresh_token (session_id, successor_digest)
    where successor_ciphertext is not null;
