-- verify: how many keys of each problem, and how many rows the dataset has.
SELECT problem, count(*) AS n FROM verify_outcome GROUP BY problem
UNION ALL
SELECT 'stored', count(*) FROM search_results WHERE dataset_id = %(dataset_id)s
