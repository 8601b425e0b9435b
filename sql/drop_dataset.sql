-- drop: one dataset, its rows and its load history, in the caller's transaction. Rows of other
-- tables that reference them follow their foreign keys (those with ON DELETE CASCADE go too).
WITH results AS (
    DELETE FROM search_results WHERE dataset_id = %(dataset_id)s RETURNING 1
), runs AS (
    DELETE FROM load_runs WHERE dataset_id = %(dataset_id)s RETURNING 1
), dataset AS (
    DELETE FROM datasets WHERE id = %(dataset_id)s RETURNING 1
)
SELECT (SELECT count(*) FROM results) AS rows, (SELECT count(*) FROM runs) AS runs,
       (SELECT count(*) FROM dataset) AS datasets
