-- Sinch contact events received on the webhook, stored before the callback
-- is answered so that a crash between the answer and the work loses nothing,
-- and the nonces of verified callbacks, so that a replay is refused across
-- restarts too (SPEC §6).

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

-- +goose Down
DROP TABLE syncd.webhook_nonces;
DROP TABLE syncd.webhook_events;
