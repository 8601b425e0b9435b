-- drop: what dropping one dataset removes from pharmload's own tables, and the screenshots its rows
-- reference (those no other dataset references are what a gc after the drop removes).
SELECT (SELECT count(*) FROM search_results WHERE dataset_id = %(dataset_id)s) AS rows,
       (SELECT count(*) FROM load_runs WHERE dataset_id = %(dataset_id)s) AS runs,
       (SELECT count(DISTINCT image_hash) FROM search_results WHERE dataset_id = %(dataset_id)s) AS images,
       (SELECT count(DISTINCT r.image_hash) FROM search_results r
        WHERE r.dataset_id = %(dataset_id)s
          AND NOT EXISTS (SELECT 1 FROM search_results o
                          WHERE o.image_hash = r.image_hash AND o.dataset_id <> %(dataset_id)s)) AS images_only_here
