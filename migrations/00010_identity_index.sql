-- What partial runs need to decide as a full run does (SPEC §8): the
-- identities each live CRM record holds, so that the records holding an
-- identity are found without scanning the source, and the queue of what a
-- partial run could not decide, for the next full run.

-- +goose Up
-- One row per identity of a live record, by planner.LookupKey ("tel:+46..."
-- for a phone number on any channel). Written by every read of the source.
CREATE TABLE syncd.record_identities (
    project_id  text NOT NULL,
    identity    text NOT NULL,
    external_id text NOT NULL,
    PRIMARY KEY (project_id, identity, external_id)
);
CREATE INDEX record_identities_record_idx ON syncd.record_identities (project_id, external_id);

-- A project's row says its record_identities holds every live record: a full
-- run has written them all. Until then partial runs leave identity questions
-- to the full run, since a record they cannot find may share the identity.
CREATE TABLE syncd.identity_indexes (
    project_id text        PRIMARY KEY,
    built_at   timestamptz NOT NULL
);

-- What partial runs left to the next full run, and why: a record (by
-- external_id) or a contact (by id) whose scope grew past the bound. It is
-- not looked up again until a full run has decided it.
CREATE TABLE syncd.deferred (
    project_id  text        NOT NULL,
    kind        text        NOT NULL CONSTRAINT deferred_kind_check CHECK (kind IN ('record', 'contact')),
    key         text        NOT NULL,
    reason      text        NOT NULL,
    run_id      bigint      REFERENCES syncd.runs (id) ON DELETE SET NULL,
    deferred_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, kind, key)
);

-- +goose Down
DROP TABLE syncd.deferred;
DROP TABLE syncd.identity_indexes;
DROP TABLE syncd.record_identities;
