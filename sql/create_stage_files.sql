-- One row per loaded search file: its metadata object and the whole file, as JSON text.
CREATE TEMP TABLE stage_files (
    file_order bigint,
    meta       text,
    raw        text
) ON COMMIT DROP
