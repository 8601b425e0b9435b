-- The one merge of a load: newest search per key wins, within the load and against what is stored;
-- an equal or older search changes nothing. Returns inserted, updated and distinct-key counts.
WITH src AS (
    SELECT DISTINCT ON (s.search_state, s.search_name, s.license_number) s.*
    FROM stage_search_results s
    ORDER BY s.search_state, s.search_name, s.license_number, s.search_ts DESC, s.file_order, s.lic_idx
), merged AS (
    INSERT INTO search_results AS t (
        dataset_id, search_name, search_state, search_ts, license_number, license_status,
        license_name, license_type, address, city, state, zip, issue_date, expiration_date,
        result_status, meta, raw, image_hash)
    SELECT %(dataset_id)s, src.search_name, src.search_state, src.search_ts, src.license_number,
           src.license_status, src.license_name, src.license_type, src.address, src.city, src.state, src.zip,
           src.issue_date, src.expiration_date, src.result_status, doc.raw -> 'metadata', doc.raw, i.content_hash
    FROM src
    JOIN stage_files f ON f.file_order = src.file_order
    -- Parsed once per winning row: OFFSET 0 keeps the planner from pulling the subquery up and
    -- putting f.raw::jsonb in place of doc.raw twice below (it did: two parses of every row's file).
    CROSS JOIN LATERAL (SELECT f.raw::jsonb AS raw OFFSET 0) doc
    LEFT JOIN stage_file_images fi ON fi.file_order = src.file_order
    LEFT JOIN (SELECT DISTINCT ON (image_rel) image_rel, content_hash
               FROM stage_image_assets ORDER BY image_rel) i ON i.image_rel = fi.image_rel
    ON CONFLICT (dataset_id, search_state, search_name, license_number) DO UPDATE SET
        search_ts = excluded.search_ts,
        license_status = excluded.license_status,
        license_name = excluded.license_name,
        license_type = excluded.license_type,
        address = excluded.address,
        city = excluded.city,
        state = excluded.state,
        zip = excluded.zip,
        issue_date = excluded.issue_date,
        expiration_date = excluded.expiration_date,
        result_status = excluded.result_status,
        meta = excluded.meta,
        raw = excluded.raw,
        image_hash = excluded.image_hash,
        updated_at = now()
    WHERE excluded.search_ts > t.search_ts OR t.search_ts IS NULL  -- NULL: rows migrated from old scripts
    RETURNING (xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted) AS inserted,
       count(*) FILTER (WHERE NOT inserted) AS updated,
       (SELECT count(*) FROM src) AS distinct_rows
FROM merged
