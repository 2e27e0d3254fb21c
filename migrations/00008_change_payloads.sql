-- Change notifications that say what changed, from both sides.
--
-- syncd.notify_changed(), the trigger function for a CRM table of the
-- user's own (00007), sent the key alone, old then new, where the
-- reference table's trigger (00006) sends {"op": "UPDATE", "old": "a",
-- "new": "b"}: on a user's table a changed key looked like a deleted record
-- and a new one, and the rename deleted the contact and created another,
-- its conversations lost. It now sends that same payload, the prefix
-- applied to both ids; a row without the key column still sends the vague
-- '' rather than fail the user's write.
--
-- syncd.webhook_events: a NOTIFY on syncd_webhook_events, with the project
-- id as payload, in the transaction that stores events, so that the syncd
-- holding the project lock is woken when another one (behind the same load
-- balancer, or a standby) received the callbacks. A statement trigger with
-- a transition table: one notification per project per batch, none when
-- every event was a duplicate.

-- +goose Up
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION syncd.notify_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    key_column text := COALESCE(TG_ARGV[0], 'external_id');
    prefix     text := COALESCE(TG_ARGV[1], '');
    old_id     text;
    new_id     text;
    payload    text := '';
BEGIN
    IF TG_LEVEL = 'STATEMENT' THEN
        PERFORM pg_notify('syncd_crm_changed', '');
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        old_id := prefix || (to_jsonb(OLD) ->> key_column);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        new_id := prefix || (to_jsonb(NEW) ->> key_column);
    END IF;
    IF old_id IS NOT NULL OR new_id IS NOT NULL THEN
        payload := json_build_object('op', TG_OP, 'old', old_id, 'new', new_id)::text;
    END IF;
    -- Payloads are capped below 8000 bytes; '' says "something changed".
    IF octet_length(payload) >= 8000 THEN
        payload := '';
    END IF;
    PERFORM pg_notify('syncd_crm_changed', payload);
    RETURN NULL;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION syncd.webhook_events_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('syncd_webhook_events', s.project_id)
    FROM (SELECT DISTINCT project_id FROM stored) s;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER webhook_events_notify AFTER INSERT ON syncd.webhook_events
    REFERENCING NEW TABLE AS stored
    FOR EACH STATEMENT EXECUTE FUNCTION syncd.webhook_events_notify();

-- +goose Down
DROP TRIGGER webhook_events_notify ON syncd.webhook_events;
DROP FUNCTION syncd.webhook_events_notify();

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION syncd.notify_changed() RETURNS trigger
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
