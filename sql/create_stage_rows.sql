-- Where one load's rows land by COPY before the single merge; gone at commit or rollback.
-- Narrow on purpose: the merge sorts these rows, and each file's JSON (stage_files) and screenshot
-- (stage_file_images) are joined in only for the rows that win.
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
    result_status   text
) ON COMMIT DROP
