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

-- +goose Down
DROP FUNCTION syncd.notify_changed();
