-- How many rows of the dataset the load's transaction wrote (inserted or updated).
SELECT count(*) FROM search_results WHERE dataset_id = %(dataset_id)s AND updated_at = %(load_ts)s
