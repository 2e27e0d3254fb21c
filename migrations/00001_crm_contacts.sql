-- The reference CRM table: exactly the source contract of SPEC §2, for users
-- without a CRM schema of their own, for the demo and for tests. Users with
-- their own CRM point crm.source at a view instead and never write here.

-- +goose Up
CREATE TABLE public.crm_contacts (
    external_id        text PRIMARY KEY,
    display_name       text,
    email              text,
    phone              text,
    channel_identities jsonb,
    channel_priority   text[],
    language           text,
    metadata           text,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    deleted_at         timestamptz
);

-- Incremental runs page with the row-value keyset (updated_at, external_id);
-- carrying external_id in the index serves the tie-break without a sort.
CREATE INDEX crm_contacts_updated_at_idx ON public.crm_contacts (updated_at, external_id);

-- syncd's own objects live in their own schema, this trigger function included.
CREATE SCHEMA IF NOT EXISTS syncd;

-- +goose StatementBegin
CREATE FUNCTION syncd.crm_contacts_touch() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- A trigger cannot see the statement's SET list. An unchanged updated_at is
    -- taken to mean "not set", so writers that forget it still feed incremental
    -- sync, while loaders that set it on purpose (imports, tests) keep theirs.
    IF NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at THEN
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END
$$;
-- +goose StatementEnd

-- The WHEN clause keeps no-op updates (SET email = email) from looking like
-- changes, which would cost an incremental look-up for nothing.
CREATE TRIGGER crm_contacts_touch
    BEFORE UPDATE ON public.crm_contacts
    FOR EACH ROW
    WHEN (OLD.* IS DISTINCT FROM NEW.*)
    EXECUTE FUNCTION syncd.crm_contacts_touch();

-- +goose Down
DROP TABLE public.crm_contacts;
DROP FUNCTION syncd.crm_contacts_touch();
-- The syncd schema stays: goose's version table lives in it.
