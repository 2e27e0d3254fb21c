-- syncd's own state: links between CRM ids and Sinch contacts, runs, the
-- operation journal and the incremental watermarks (SPEC §2, §4).

-- +goose Up
CREATE SCHEMA IF NOT EXISTS syncd;

CREATE TABLE syncd.links (
    project_id   text        NOT NULL,
    external_id  text        NOT NULL,
    contact_id   text        NOT NULL,
    content_hash text        NOT NULL DEFAULT '',
    synced_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, external_id)
);
-- Merges and adoptions start from a Sinch contact id and need its link.
CREATE INDEX links_contact_idx ON syncd.links (project_id, contact_id);

CREATE TABLE syncd.runs (
    id          bigserial   PRIMARY KEY,
    project_id  text        NOT NULL,
    kind        text        NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    outcome     text        NOT NULL DEFAULT 'running',
    counts      jsonb       NOT NULL DEFAULT '{}',
    error       text,
    host        text,
    pid         integer,
    -- Crash recovery trusts "running" to mean "never finished"; a finished run
    -- left marked running would have its journal replayed.
    CONSTRAINT runs_running_unfinished CHECK ((outcome = 'running') = (finished_at IS NULL))
);
CREATE INDEX runs_project_idx ON syncd.runs (project_id, id DESC);
CREATE INDEX runs_running_idx ON syncd.runs (project_id) WHERE outcome = 'running';

CREATE TABLE syncd.journal (
    id                bigserial   PRIMARY KEY,
    -- Pruning old runs takes their journal with them.
    run_id            bigint      NOT NULL REFERENCES syncd.runs (id) ON DELETE CASCADE,
    kind              text        NOT NULL
        CONSTRAINT journal_kind_check CHECK (kind IN ('create', 'patch', 'merge', 'delete', 'unlink', 'reject')),
    external_id       text,
    contact_id        text,
    source_contact_id text,
    update_mask       text[],
    reason            text,
    status            text        NOT NULL DEFAULT 'pending'
        CONSTRAINT journal_status_check CHECK (status IN ('pending', 'done', 'failed', 'skipped', 'rejected')),
    http_status       integer,
    error             text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    finished_at       timestamptz
);
CREATE INDEX journal_run_idx ON syncd.journal (run_id);
CREATE INDEX journal_external_id_idx ON syncd.journal (external_id);
-- Recovery reads only what is still pending, a tiny fraction of the journal.
CREATE INDEX journal_pending_idx ON syncd.journal (run_id) WHERE status = 'pending';

CREATE TABLE syncd.watermarks (
    project_id  text        PRIMARY KEY,
    updated_at  timestamptz NOT NULL,
    -- Tie-break of the keyset (updated_at, external_id); '' sorts before any id.
    external_id text        NOT NULL DEFAULT ''
);

-- +goose Down
DROP TABLE syncd.watermarks;
DROP TABLE syncd.journal;
DROP TABLE syncd.runs;
DROP TABLE syncd.links;
