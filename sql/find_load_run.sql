-- Did the load with this id commit? The database, not the manifest, is the truth.
SELECT id FROM load_runs WHERE load_id = %(load_id)s
