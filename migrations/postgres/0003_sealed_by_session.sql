-- A rotation erases the sealed successor held by the presented token's predecessor (it can no
-- longer be handed back: that successor is now used); this finds it within the session.
create index refresh_token_sealed_by_session on refresh_token (session_id)
    where successor_ciphertext is not null;
