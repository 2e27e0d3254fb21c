-- Who held the project lock for a run, so that a runner that takes the lock
-- and finds an earlier run still "running" can tell whether that run may
-- still be sending to Sinch:
--   lock_pid, lock_backend_start: the PostgreSQL session that held the lock
--     (pids are reused; with backend_start they name one session). While it
--     is in pg_stat_activity the run is not dead.
--   pid_namespace: the process's PID namespace (Linux: /proc/self/ns/pid), so
--     that host and pid name one process even where containers share a
--     hostname; a process found gone on this host cannot be sending.
-- NULL for runs recorded before this migration: nothing is known of them.
--
-- Also drops watermarks.external_id, a keyset tie-break that was always ''
-- and that nothing ever read.

-- +goose Up
ALTER TABLE syncd.runs
    ADD COLUMN lock_pid           integer,
    ADD COLUMN lock_backend_start timestamptz,
    ADD COLUMN pid_namespace      text;

ALTER TABLE syncd.watermarks DROP COLUMN external_id;

-- +goose Down
ALTER TABLE syncd.watermarks ADD COLUMN external_id text NOT NULL DEFAULT '';

ALTER TABLE syncd.runs
    DROP COLUMN pid_namespace,
    DROP COLUMN lock_backend_start,
    DROP COLUMN lock_pid;
