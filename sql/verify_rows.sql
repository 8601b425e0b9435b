-- Rows that differ from what the load meant: missing, older than the load's search, or written by
-- this load (updated_at = its transaction time) with other values. Same canonical text as
-- frame.content_canon: fields joined by U+001F, NULL as \N, epoch microseconds, epoch days.
SELECT e.search_state, e.search_name, e.license_number,
       CASE WHEN r.id IS NULL THEN 'missing'
            WHEN (extract(epoch FROM r.search_ts) * 1000000)::bigint < e.search_ts_us THEN 'older than loaded'
            ELSE 'values differ' END AS problem
FROM verify_expected e
LEFT JOIN search_results r
       ON r.dataset_id = %(dataset_id)s AND r.search_state = e.search_state AND r.search_name = e.search_name
      AND r.license_number IS NOT DISTINCT FROM e.license_number
WHERE r.id IS NULL
   OR (extract(epoch FROM r.search_ts) * 1000000)::bigint < e.search_ts_us
   OR (r.updated_at = %(load_ts)s AND md5(concat_ws(E'\x1f',
          coalesce(r.search_state, '\N'), coalesce(r.search_name, '\N'), coalesce(r.license_number, '\N'),
          coalesce(r.license_status, '\N'), coalesce(r.license_name, '\N'), coalesce(r.license_type, '\N'),
          coalesce(r.address, '\N'), coalesce(r.city, '\N'), coalesce(r.state, '\N'), coalesce(r.zip, '\N'),
          coalesce(r.result_status, '\N'),
          coalesce((r.issue_date - date '1970-01-01')::text, '\N'),
          coalesce((r.expiration_date - date '1970-01-01')::text, '\N'),
          ((extract(epoch FROM r.search_ts) * 1000000)::bigint)::text,
          coalesce(r.image_hash, '\N'))) <> e.content_md5)
ORDER BY 1, 2, 3
LIMIT 1000
