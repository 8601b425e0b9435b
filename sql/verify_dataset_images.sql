-- verify: each screenshot the dataset's rows refer to, with what image_assets says of it (NULL: no row).
SELECT r.image_hash, a.file_size, a.storage_type
FROM (SELECT DISTINCT image_hash FROM search_results
      WHERE dataset_id = %(dataset_id)s AND image_hash IS NOT NULL) r
LEFT JOIN image_assets a ON a.content_hash = r.image_hash
ORDER BY r.image_hash
