-- The merge for a tag that holds no rows yet: nothing can conflict, so a plain INSERT of the newest
-- search per key (same selection as merge_search_results.sql) does the same, without ON CONFLICT's cost.
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
           src.issue_date, src.expiration_date, src.result_status, f.meta::jsonb, f.raw::jsonb, i.content_hash
    FROM src
    JOIN stage_files f ON f.file_order = src.file_order
    LEFT JOIN stage_file_images fi ON fi.file_order = src.file_order
    LEFT JOIN stage_image_assets i ON i.image_rel = fi.image_rel
    RETURNING true AS inserted
)
SELECT count(*) AS inserted, 0 AS updated, (SELECT count(*) FROM src) AS distinct_rows
FROM merged
