-- The one merge of a load: the loader has already picked one row per key within the load (the
-- others are listed in stage_superseded), so this reads the winners as staged, typed and whole;
-- against what is stored, a newer search wins and an equal or older one changes nothing.
-- Returns the inserted and updated counts.
WITH merged AS (
    INSERT INTO search_results AS t (
        dataset_id, search_name, search_state, search_ts, license_number, license_status,
        license_name, license_type, address, city, state, zip, issue_date, expiration_date,
        result_status, meta, raw, image_hash)
    SELECT %(dataset_id)s, s.search_name, s.search_state, s.search_ts, s.license_number,
           s.license_status, s.license_name, s.license_type, s.address, s.city, s.state, s.zip,
           s.issue_date, s.expiration_date, s.result_status, s.meta, s.raw, s.image_hash
    FROM stage_search_results s
    WHERE NOT EXISTS (SELECT 1 FROM stage_superseded x WHERE x.file_order = s.file_order AND x.lic_idx = s.lic_idx)
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
       count(*) FILTER (WHERE NOT inserted) AS updated
FROM merged
