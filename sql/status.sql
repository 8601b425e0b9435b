-- Datasets with their row and screenshot counts and their last load.
SELECT d.id, d.tag, d.created_at,
       (SELECT count(*) FROM search_results r WHERE r.dataset_id = d.id) AS rows,
       (SELECT count(DISTINCT r.image_hash) FROM search_results r WHERE r.dataset_id = d.id) AS images,
       l.finished_at AS last_load, l.status AS last_status, l.rows_inserted AS last_inserted,
       l.rows_updated AS last_updated, l.files_rejected AS last_rejected
FROM datasets d
LEFT JOIN LATERAL (
    SELECT finished_at, status, rows_inserted, rows_updated, files_rejected
    FROM load_runs WHERE dataset_id = d.id ORDER BY finished_at DESC, id DESC LIMIT 1
) l ON true
WHERE d.kind = 'states'
ORDER BY d.id
