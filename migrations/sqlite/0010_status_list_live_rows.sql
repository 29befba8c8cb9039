-- A status-list build reads only the tokens minted within an access-token lifetime (and the
-- retry window): the indexes lead to them by list and mint time, not to every row of the list.
drop index session_by_status_list;
create index session_by_status_list on session (status_list_id, created_at)
    where status_list_id is not null;
drop index refresh_token_by_status_list;
create index refresh_token_by_status_list on refresh_token (access_status_list_id, created_at)
    where access_status_list_id is not null;
