-- The staged rows that another staged row with the same key beats (newer search, or on a tie an
-- earlier file): the loader lists them after the last chunk; the merge leaves them out.
CREATE TEMP TABLE stage_superseded (
    file_order bigint,
    lic_idx    integer
) ON COMMIT DROP
