-- The load's own record, written in the load's transaction: if it is here, the load committed.
INSERT INTO load_runs (dataset_id, tag, load_id, manifest_digest, status, started_at, finished_at, files_seen, files_loaded,
                       files_skipped, files_rejected, rows_inserted, rows_updated, rows_unchanged,
                       images_stored, report)
VALUES (%(dataset_id)s, %(tag)s, %(load_id)s, %(manifest_digest)s, %(status)s, %(started_at)s, clock_timestamp(),
        %(files_seen)s,
        %(files_loaded)s, %(files_skipped)s, %(files_rejected)s, %(rows_inserted)s, %(rows_updated)s,
        %(rows_unchanged)s, %(images_stored)s, %(report)s)
RETURNING id
