-- Merges and deletes cannot be undone. Before one is sent, the journal
-- keeps the full contacts it touches, as syncd last read them, so that a
-- person can see exactly what was removed (and recreate it by hand):
--   contacts: a JSON array of Sinch contacts (the destination and the
--     source of a merge; the contact of a delete). NULL for other kinds.
-- "unknown" joins the statuses: an operation whose answer was lost, or
-- that a stopped run left pending; the next run reads Sinch afresh.

-- +goose Up
ALTER TABLE syncd.journal ADD COLUMN contacts jsonb;
ALTER TABLE syncd.journal DROP CONSTRAINT journal_status_check,
    ADD CONSTRAINT journal_status_check CHECK (status IN ('pending', 'done', 'failed', 'skipped', 'rejected', 'unknown'));

-- +goose Down
UPDATE syncd.journal SET status = 'failed' WHERE status = 'unknown';
ALTER TABLE syncd.journal DROP CONSTRAINT journal_status_check,
    ADD CONSTRAINT journal_status_check CHECK (status IN ('pending', 'done', 'failed', 'skipped', 'rejected'));
ALTER TABLE syncd.journal DROP COLUMN contacts;
