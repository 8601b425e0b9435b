-- Whether the tag holds no rows yet (asked under the tag's lock, so it cannot change before the merge).
SELECT NOT EXISTS (SELECT 1 FROM search_results WHERE dataset_id = %(dataset_id)s)
