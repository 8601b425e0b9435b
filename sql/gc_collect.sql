-- gc: delete the screenshot rows no search_results row references (any dataset) that are this
-- store's (or 'pending': their upload failed) and at the store's own path for their hash, and return
-- them. Rows of another store, or at another path (the old PharmChecker scripts'), are left alone.
-- The caller holds gc's exclusive lock: no load that could reference one of them is running.
DELETE FROM image_assets a
WHERE NOT EXISTS (SELECT 1 FROM search_results r WHERE r.image_hash = a.content_hash)
  AND a.storage_type IN (%(storage_type)s, 'pending')
  AND a.storage_path = 'sha256/' || left(a.content_hash, 2) || '/' || substr(a.content_hash, 3, 2) || '/'
                       || a.content_hash || '.png'
RETURNING a.content_hash, a.storage_path, a.file_size
