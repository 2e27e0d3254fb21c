-- Events, both ways (SPEC §6).
--
-- From Sinch: the contact events received on the webhook, stored before the
-- callback is answered so that a crash between the answer and the work
-- loses nothing, and the nonces of verified callbacks, so that a replay is
-- refused across restarts too.
--
-- From the CRM: the change notification of crm_contacts names the operation
-- and both ids, {"op": "UPDATE", "old": "a", "new": "b"}, where 00003 sent
-- the ids alone (the old one, then the new one): a listener could not tell a
-- renamed record from a deleted one and an inserted one, and a rename must
-- keep its Sinch contact. Listeners still take a bare id, which is what a
-- user's own trigger may send.

-- +goose Up
CREATE TABLE syncd.webhook_events (
    id          bigserial   PRIMARY KEY,
    project_id  text        NOT NULL,
    -- Sinch gives contact events no id of their own; a redelivery carries the
    -- same envelope, so its digest names the event (see webhook.EventKey).
    event_key   text        NOT NULL,
    trigger     text        NOT NULL,
    event_time  timestamptz,
    received_at timestamptz NOT NULL DEFAULT now(),
    payload     jsonb       NOT NULL,
    attempts    integer     NOT NULL DEFAULT 0,
    done_at     timestamptz,
    -- The run that reconciled the contacts the event names.
    run_id      bigint,
    error       text,
    UNIQUE (project_id, event_key)
);
-- The queue: what is still to be processed, oldest first.
CREATE INDEX webhook_events_pending_idx ON syncd.webhook_events (project_id, id) WHERE done_at IS NULL;

CREATE TABLE syncd.webhook_nonces (
    nonce   text        PRIMARY KEY,
    seen_at timestamptz NOT NULL DEFAULT now()
);
-- Nonces older than the accepted clock skew can go: their timestamps are
-- refused anyway.
CREATE INDEX webhook_nonces_seen_idx ON syncd.webhook_nonces (seen_at);

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION syncd.crm_contacts_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    old_id  text;
    new_id  text;
    payload text;
BEGIN
    IF TG_LEVEL = 'STATEMENT' THEN
        PERFORM pg_notify('syncd_crm_changed', '');
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        old_id := OLD.external_id::text;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        new_id := NEW.external_id::text;
    END IF;
    payload := json_build_object('op', TG_OP, 'old', old_id, 'new', new_id)::text;
    -- Payloads are capped below 8000 bytes; "" says "something changed".
    IF octet_length(payload) >= 8000 THEN
        payload := '';
    END IF;
    PERFORM pg_notify('syncd_crm_changed', payload);
    RETURN NULL;
END
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION syncd.crm_contacts_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_LEVEL = 'STATEMENT' THEN
        PERFORM pg_notify('syncd_crm_changed', '');
        RETURN NULL;
    END IF;
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
DROP TABLE syncd.webhook_nonces;
DROP TABLE syncd.webhook_events;
