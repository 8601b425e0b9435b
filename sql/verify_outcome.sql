-- verify: pair each key's newest search in the scrape (a tie: the first file in path order, then
-- the first license, as the load's dedup rule) with the dataset's row of that key; keep the pairs
-- that differ. A NULL license_number is a key value of its own (UNIQUE NULLS NOT DISTINCT), matched
-- as (IS NULL, coalesce) so that the full join can hash.
INSERT INTO verify_outcome
WITH scrape AS (
    SELECT DISTINCT ON (search_state, search_name, license_number IS NULL, coalesce(license_number, ''))
           search_state, search_name, license_number, search_ts_us, file_order, content_md5
    FROM verify_scrape
    ORDER BY search_state, search_name, license_number IS NULL, coalesce(license_number, ''),
             search_ts_us DESC, file_order, lic_idx
), stored AS (
    SELECT r.id, r.search_state, r.search_name, r.license_number,
           (extract(epoch FROM r.search_ts) * 1000000)::bigint AS search_ts_us,
           md5(array_to_string({canon}, E'\x1f')) AS content_md5
    FROM search_results r
    WHERE r.dataset_id = %(dataset_id)s
), paired AS (
    SELECT coalesce(s.search_state, d.search_state) AS search_state,
           coalesce(s.search_name, d.search_name) AS search_name,
           CASE WHEN s.search_state IS NULL THEN d.license_number ELSE s.license_number END AS license_number,
           s.file_order, d.id AS row_id,
           CASE WHEN d.id IS NULL THEN 'missing'
                WHEN s.search_state IS NULL THEN 'not in scrape'
                WHEN d.search_ts_us < s.search_ts_us THEN 'older than the scrape'
                WHEN d.search_ts_us > s.search_ts_us THEN 'newer in database'
                WHEN d.content_md5 <> s.content_md5 THEN 'values differ' END AS problem
    FROM scrape s
    FULL JOIN stored d
           ON d.search_state = s.search_state AND d.search_name = s.search_name
          AND (d.license_number IS NULL) = (s.license_number IS NULL)
          AND coalesce(d.license_number, '') = coalesce(s.license_number, '')
)
SELECT * FROM paired WHERE problem IS NOT NULL
