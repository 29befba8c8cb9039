-- Token Status List housekeeping: when indices of a list were last leased. A list whose last
-- lease is older than an instance may keep using a lease, plus a client block's period, the
-- refresh retry window and an access-token lifetime, is named by no live token and is purged
-- (with its blocks and marks).
alter table status_list add column leased_at timestamptz;
update status_list set leased_at = created_at;
alter table status_list alter column leased_at set not null;
create index status_list_by_leased_at on status_list (leased_at);
create index status_block_by_period on status_block (period_start);
create index status_mark_by_created_at on status_mark (created_at);
