-- One row per distinct screenshot. A known screenshot keeps its row, except that one recorded as
-- 'pending' (its upload failed) becomes stored once a later run has uploaded it. Rows already in
-- place are filtered out first: ON CONFLICT would lock (and dirty) every one of them.
WITH upserted AS (
    INSERT INTO image_assets AS a (content_hash, storage_path, storage_type, file_size, content_type, width, height)
    SELECT DISTINCT ON (s.content_hash)
           s.content_hash, s.storage_path, s.storage_type, s.file_size, s.content_type, s.width, s.height
    FROM stage_image_assets s
    WHERE s.content_hash IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM image_assets k
                      WHERE k.content_hash = s.content_hash
                        AND (k.storage_type <> 'pending' OR s.storage_type = 'pending'))
    ORDER BY s.content_hash, s.storage_type = 'pending'
    ON CONFLICT (content_hash) DO UPDATE SET
        storage_type = excluded.storage_type,
        storage_path = excluded.storage_path
    WHERE a.storage_type = 'pending' AND excluded.storage_type <> 'pending'
    RETURNING (xmax = 0) AS inserted
)
SELECT (SELECT count(*) FILTER (WHERE inserted) FROM upserted) AS inserted,
       (SELECT count(*) FROM (SELECT DISTINCT content_hash FROM stage_image_assets
                              WHERE content_hash IS NOT NULL) d) AS distinct_images
