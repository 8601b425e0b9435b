-- One row per search file that has a row left after its chunk's dedup: the whole file as JSON text.
-- Its metadata object (meta) is taken from it in the merge, for the winning rows only.
CREATE TEMP TABLE stage_files (
    file_order bigint,
    raw        text
) ON COMMIT DROP
