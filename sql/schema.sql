-- PharmChecker's tables as pharmload writes them. Idempotent: safe to run on every init-db.
-- Requires PostgreSQL 15+ (UNIQUE NULLS NOT DISTINCT).
CREATE TABLE IF NOT EXISTS datasets (
    id          bigserial PRIMARY KEY,
    kind        text        NOT NULL,
    tag         text        NOT NULL,
    description text,
    created_by  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT datasets_kind_tag_key UNIQUE (kind, tag)
);

CREATE TABLE IF NOT EXISTS image_assets (
    content_hash text        PRIMARY KEY,
    storage_path text        NOT NULL,
    storage_type text        NOT NULL,
    file_size    bigint      NOT NULL,
    content_type text,
    width        integer,
    height       integer,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- A SHA-256 in lower-case hex. Written as a length and a character class (version 3): the old
-- '^[0-9a-f]{64}$' cost 12 us a row in PostgreSQL's regex engine, more than the rest of the insert.
ALTER TABLE image_assets DROP CONSTRAINT IF EXISTS image_assets_content_hash_check;
ALTER TABLE image_assets ADD CONSTRAINT image_assets_content_hash_check
    CHECK (octet_length(content_hash) = 64 AND content_hash ~ '^[0-9a-f]*$');

CREATE TABLE IF NOT EXISTS search_results (
    id              bigserial PRIMARY KEY,
    dataset_id      bigint      NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    search_name     text        NOT NULL,
    search_state    text        NOT NULL,
    search_ts       timestamptz NOT NULL,
    license_number  text,
    license_status  text,
    license_name    text,
    license_type    text,
    address         text,
    city            text,
    state           text,
    zip             text,
    issue_date      date,
    expiration_date date,
    result_status   text        NOT NULL,
    meta            jsonb,
    raw             jsonb,
    image_hash      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT search_results_dataset_search_license_key
        UNIQUE NULLS NOT DISTINCT (dataset_id, search_state, search_name, license_number)
);

CREATE INDEX IF NOT EXISTS search_results_image_hash_idx ON search_results (image_hash);

CREATE TABLE IF NOT EXISTS load_runs (
    id              bigserial PRIMARY KEY,
    dataset_id      bigint      REFERENCES datasets (id) ON DELETE CASCADE,
    tag             text        NOT NULL,
    load_id         text        UNIQUE,
    manifest_digest text,
    status          text        NOT NULL,
    started_at      timestamptz NOT NULL,
    finished_at     timestamptz NOT NULL DEFAULT now(),
    files_seen      integer,
    files_loaded    integer,
    files_skipped   integer,
    files_rejected  integer,
    rows_inserted   integer,
    rows_updated    integer,
    rows_unchanged  integer,
    images_stored   integer,
    report          jsonb
);

CREATE INDEX IF NOT EXISTS load_runs_dataset_idx ON load_runs (dataset_id, finished_at DESC);

-- Columns added after the first release; keep them here so older databases catch up.
ALTER TABLE load_runs ADD COLUMN IF NOT EXISTS load_id text UNIQUE;

-- The shape version this file creates; loads re-apply this file when the database is older.
CREATE TABLE IF NOT EXISTS pharmload_schema (version integer NOT NULL);
DELETE FROM pharmload_schema;
INSERT INTO pharmload_schema (version) VALUES (3);
