-- Token Status List housekeeping: mirrors migrations/postgres/0008_status_list_purge.sql (times
-- in Unix milliseconds).
alter table status_list add column leased_at integer not null default 0;
update status_list set leased_at = created_at;
create index status_list_by_leased_at on status_list (leased_at);
create index status_block_by_period on status_block (period_start);
create index status_mark_by_created_at on status_mark (created_at);
