-- Datasets with their row and screenshot counts and their last load.
SELECT d.id, d.tag, d.created_at,
       (SELECT count(*) FROM search_results r WHERE r.dataset_id = d.id) AS rows,
       (SELECT count(DISTINCT r.image_hash) FROM search_results r WHERE r.dataset_id = d.id) AS images,
       (SELECT max(l.finished_at) FROM load_runs l WHERE l.dataset_id = d.id AND l.status = 'ok') AS last_load
FROM datasets d
WHERE d.kind = 'states'
ORDER BY d.id
