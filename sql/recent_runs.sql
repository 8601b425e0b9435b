-- Recent loads, newest first; all tags when %(tag)s is NULL.
SELECT id, tag, status, started_at, finished_at,
       extract(epoch FROM finished_at - started_at) AS seconds,
       files_seen, files_loaded, files_skipped, files_rejected,
       rows_inserted, rows_updated, rows_unchanged, images_stored
FROM load_runs
WHERE %(tag)s::text IS NULL OR tag = %(tag)s
ORDER BY finished_at DESC, id DESC
LIMIT %(limit)s
