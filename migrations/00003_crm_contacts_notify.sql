-- Change notifications from the reference CRM table, so a daemon that LISTENs
-- on syncd_crm_changed can sync a change within seconds instead of waiting for
-- the next scheduled incremental run.
--
-- Row-level, because the payload then names the record: the listener can look
-- up exactly those ids. PostgreSQL delivers notifications only at commit and
-- folds identical (channel, payload) pairs within a transaction, so rewriting a
-- row several times in one transaction costs one notification. A bulk load
-- still queues one per row; the listener is expected to coalesce them (and can
-- fall back to a watermark run), and a loader that minds the cost can
-- DISABLE TRIGGER crm_contacts_notify for the load, the watermark still sees
-- every row. A statement-level trigger could not name its rows anyway: payloads
-- are capped below 8000 bytes.
--
-- An empty payload means "something changed, I cannot say what": TRUNCATE, or
-- an id too long for a payload. Failing the user's write over a notification
-- would be worse than a vague one.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION syncd.crm_contacts_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_LEVEL = 'STATEMENT' THEN
        PERFORM pg_notify('syncd_crm_changed', '');
        RETURN NULL;
    END IF;
    -- Both ids on UPDATE: a renamed external_id is a delete of the old record.
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM pg_notify('syncd_crm_changed',
            CASE WHEN octet_length(OLD.external_id) < 8000 THEN OLD.external_id ELSE '' END);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM pg_notify('syncd_crm_changed',
            CASE WHEN octet_length(NEW.external_id) < 8000 THEN NEW.external_id ELSE '' END);
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER crm_contacts_notify
    AFTER INSERT OR DELETE ON public.crm_contacts
    FOR EACH ROW
    EXECUTE FUNCTION syncd.crm_contacts_notify();

-- No-op updates change nothing a sync could act on.
CREATE TRIGGER crm_contacts_notify_update
    AFTER UPDATE ON public.crm_contacts
    FOR EACH ROW
    WHEN (OLD.* IS DISTINCT FROM NEW.*)
    EXECUTE FUNCTION syncd.crm_contacts_notify();

CREATE TRIGGER crm_contacts_notify_truncate
    AFTER TRUNCATE ON public.crm_contacts
    FOR EACH STATEMENT
    EXECUTE FUNCTION syncd.crm_contacts_notify();

-- +goose Down
DROP TRIGGER crm_contacts_notify_truncate ON public.crm_contacts;
DROP TRIGGER crm_contacts_notify_update ON public.crm_contacts;
DROP TRIGGER crm_contacts_notify ON public.crm_contacts;
DROP FUNCTION syncd.crm_contacts_notify();
