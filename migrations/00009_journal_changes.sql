-- The values of every operation, so that syncd explain can show a record's
-- history as fields old -> new:
--   changes: a JSON array of {"field", "old", "new"}, the shape of
--     "changes" in syncd diff --format json. A patch keeps, per field of
--     its update_mask, the value Sinch held as the diff read it and the one
--     sent; a create keeps the values it sent, old "". NULL for merges and
--     deletes, whose full contacts are in contacts (00005), and for
--     rejects, and for entries written before this migration.
-- Like contacts, it holds CRM values (names, phone numbers, e-mails):
-- journal.retention bounds how long; syncd explain --redact hides them.

-- +goose Up
ALTER TABLE syncd.journal ADD COLUMN changes jsonb;

-- +goose Down
ALTER TABLE syncd.journal DROP COLUMN changes;
