-- The scratch database of benches/refresh.pgbench: Tessera's own PostgreSQL schema (the
-- migration files, applied as plain SQL) filled with 1M refresh tokens (200,000 sessions of 5)
-- by benches/refresh_fill.sql. Run it on an empty database:
--
--   createdb refresh_pgbench
--   psql -v tokens=1000000 -f benches/refresh_pgbench_setup.sql postgres://postgres@127.0.0.1:5432/refresh_pgbench
--   pgbench -n -M prepared -c 32 -j 1 -T 10 -D sessions=200000 -f benches/refresh.pgbench \
--       postgres://postgres@127.0.0.1:5432/refresh_pgbench
--
-- (A migration added later must be listed here too.)
\set ON_ERROR_STOP on
\if :{?tokens}
\else
    \set tokens 1000000
\endif
\ir ../migrations/postgres/0001_schema.sql
\ir ../migrations/postgres/0002_refresh_housekeeping.sql
\ir refresh_fill.sql
