-- Aids for operators and for CRMs of their own shape.
--
-- syncd.notify_changed(): the change notification of 00003 for any table,
-- whatever its key column is called. syncd.crm_contacts_notify() reads
-- OLD.external_id, which a user's table rarely has, and PL/pgSQL resolves
-- record fields at run time: on a table without that column every UPDATE
-- failed with `record "old" has no field "external_id"`. This one takes the
-- key column as its first trigger argument and an optional prefix (for a
-- view that maps id 42 to external_id 'cust-42') as its second, and reads
-- the row as JSON, so a missing column sends the vague '' rather than fail
-- the user's write.
--
-- syncd.record_status: one row per CRM record syncd knows of (linked to a
-- contact, or rejected), for the CRM's own SQL and dashboards to join on
-- external_id. README, "Per-record answers", documents its columns. The
-- journal is pruned after journal.retention: older operations drop out of
-- last_operation, the link stays.
--
-- Indexes: syncd explain looks a contact id up in the journal, and the view
-- finds rejected rows without reading the whole journal.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION syncd.notify_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    key_column text := COALESCE(TG_ARGV[0], 'external_id');
    prefix     text := COALESCE(TG_ARGV[1], '');
    id         text;
BEGIN
    IF TG_LEVEL = 'STATEMENT' THEN
        PERFORM pg_notify('syncd_crm_changed', '');
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        id := prefix || (to_jsonb(OLD) ->> key_column);
        PERFORM pg_notify('syncd_crm_changed', CASE WHEN octet_length(id) < 8000 THEN id ELSE '' END);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        id := prefix || (to_jsonb(NEW) ->> key_column);
        PERFORM pg_notify('syncd_crm_changed', CASE WHEN octet_length(id) < 8000 THEN id ELSE '' END);
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE INDEX journal_contact_idx ON syncd.journal (contact_id) WHERE contact_id IS NOT NULL;
CREATE INDEX journal_source_contact_idx ON syncd.journal (source_contact_id) WHERE source_contact_id IS NOT NULL;
CREATE INDEX journal_rejected_idx ON syncd.journal (external_id) WHERE status = 'rejected';

CREATE VIEW syncd.record_status AS
SELECT k.project_id,
       k.external_id,
       l.contact_id,
       l.synced_at                              AS last_synced_at,
       o.kind                                   AS last_operation,
       o.status                                 AS last_outcome,
       COALESCE(o.finished_at, o.created_at)    AS last_operation_at,
       o.run_id                                 AS last_run_id,
       rj.reason                                AS last_reject_reason,
       rj.created_at                            AS last_rejected_at
FROM (
    SELECT project_id, external_id FROM syncd.links
    UNION
    SELECT r.project_id, j.external_id
    FROM syncd.journal j JOIN syncd.runs r ON r.id = j.run_id
    WHERE j.status = 'rejected' AND j.external_id IS NOT NULL
) k
LEFT JOIN syncd.links l ON l.project_id = k.project_id AND l.external_id = k.external_id
LEFT JOIN LATERAL (
    SELECT j.kind, j.status, j.created_at, j.finished_at, j.run_id
    FROM syncd.journal j JOIN syncd.runs r ON r.id = j.run_id
    WHERE j.external_id = k.external_id AND r.project_id = k.project_id
    ORDER BY j.id DESC LIMIT 1
) o ON true
LEFT JOIN LATERAL (
    SELECT CASE WHEN j.kind = 'reject' THEN j.reason ELSE j.error END AS reason, j.created_at
    FROM syncd.journal j JOIN syncd.runs r ON r.id = j.run_id
    WHERE j.external_id = k.external_id AND r.project_id = k.project_id AND j.status = 'rejected'
    ORDER BY j.id DESC LIMIT 1
) rj ON true;

COMMENT ON VIEW syncd.record_status IS
    'One row per CRM record syncd knows of: its Sinch contact, when it was last synced, its last operation and outcome, its last reject. See README.';

-- +goose Down
DROP VIEW syncd.record_status;
DROP INDEX syncd.journal_rejected_idx;
DROP INDEX syncd.journal_source_contact_idx;
DROP INDEX syncd.journal_contact_idx;
DROP FUNCTION syncd.notify_changed();
