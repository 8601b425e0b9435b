-- Where one load's rows land by COPY before the single merge; gone at commit or rollback.
-- Typed as they arrive: the server parses raw into jsonb (and takes meta from it) during each chunk's
-- COPY, while the loader parses the next chunks, so the merge has no cast, join or sort left to do.
CREATE TEMP TABLE stage_search_results (
    file_order      bigint,
    lic_idx         integer,
    search_name     text,
    search_state    text,
    search_ts       timestamptz,
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
    result_status   text,
    raw             jsonb,
    meta            jsonb GENERATED ALWAYS AS (raw -> 'metadata') STORED,
    image_hash      text
) ON COMMIT DROP
