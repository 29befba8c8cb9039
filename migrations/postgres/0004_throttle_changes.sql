-- Instances mirror login blocks incrementally: `changed_at` is when `blocked_until` was last
-- written, so a sync reads only the blocks that changed since its last load, by this index.
alter table login_throttle add column changed_at timestamptz;
update login_throttle set changed_at = window_start where blocked_until is not null;
create index login_throttle_changed_at on login_throttle (changed_at);
