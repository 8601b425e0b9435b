-- The screenshots the load's rows refer to, with what image_assets says of them (NULL: no row).
SELECT DISTINCT r.image_hash, a.file_size, a.storage_type
FROM search_results r
LEFT JOIN image_assets a ON a.content_hash = r.image_hash
WHERE r.dataset_id = %(dataset_id)s AND r.updated_at = %(load_ts)s AND r.image_hash IS NOT NULL
