-- A rotation erases the sealed successor held by the presented token's predecessor. Finding it
-- by session alone visited every row version the session's rotations had left in the index
-- until vacuum (each rotation adds one); by (session, successor) it is one exact probe.
drop index refresh_token_sealed_by_session;
create index refresh_token_sealed_by_successor on refresh_token (session_id, successor_digest)
    where successor_ciphertext is not null;
