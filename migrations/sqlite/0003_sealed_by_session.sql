-- Mirrors migrations/postgres/0003_sealed_by_session.sql.
create index refresh_token_sealed_by_session on refresh_token (session_id)
    where successor_ciphertext is not null;
