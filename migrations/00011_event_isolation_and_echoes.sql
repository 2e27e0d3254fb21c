-- Events that fail are isolated, and echoes of syncd's own writes are
-- recognised without reading Sinch (issue 22):
--
-- webhook_events:
--   next_attempt_at: an event that failed alone waits until then before it
--     is tried again (backoff); NULL: ready now.
--   parked_at: an event that failed alone too many times is set aside,
--     with its reason in error, until `syncd events retry` puts it back.
--     It is neither done nor pending, and holds up nothing.
--
-- journal:
--   answer_hash: for a create, patch or merge Sinch answered (done), the
--     planner.ContactHash of the contact it answered with. A callback
--     carrying exactly that contact is the echo of syncd's own write, and
--     costs no read.

-- +goose Up
ALTER TABLE syncd.webhook_events
    ADD COLUMN next_attempt_at timestamptz,
    ADD COLUMN parked_at timestamptz;
-- The queue leaves the parked events out.
DROP INDEX syncd.webhook_events_pending_idx;
CREATE INDEX webhook_events_pending_idx ON syncd.webhook_events (project_id, id)
    WHERE done_at IS NULL AND parked_at IS NULL;
CREATE INDEX webhook_events_parked_idx ON syncd.webhook_events (project_id, parked_at)
    WHERE parked_at IS NOT NULL;

ALTER TABLE syncd.journal ADD COLUMN answer_hash text;
CREATE INDEX journal_answer_hash_idx ON syncd.journal (answer_hash) WHERE answer_hash IS NOT NULL;

-- +goose Down
DROP INDEX syncd.journal_answer_hash_idx;
ALTER TABLE syncd.journal DROP COLUMN answer_hash;

DROP INDEX syncd.webhook_events_parked_idx;
DROP INDEX syncd.webhook_events_pending_idx;
-- Parked events go back to the queue, which knows no other state.
UPDATE syncd.webhook_events SET attempts = 0 WHERE parked_at IS NOT NULL AND done_at IS NULL;
ALTER TABLE syncd.webhook_events
    DROP COLUMN parked_at,
    DROP COLUMN next_attempt_at;
CREATE INDEX webhook_events_pending_idx ON syncd.webhook_events (project_id, id) WHERE done_at IS NULL;
