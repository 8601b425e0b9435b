-- One row per distinct screenshot. A known screenshot keeps its row, except that one recorded as
-- 'pending' (its upload failed) becomes stored once a later run has uploaded it.
WITH upserted AS (
    INSERT INTO image_assets AS a (content_hash, storage_path, storage_type, file_size, content_type, width, height)
    SELECT DISTINCT ON (content_hash)
           content_hash, storage_path, storage_type, file_size, content_type, width, height
    FROM stage_image_assets
    WHERE content_hash IS NOT NULL
    ORDER BY content_hash, storage_type = 'pending'
    ON CONFLICT (content_hash) DO UPDATE SET
        storage_type = excluded.storage_type,
        storage_path = excluded.storage_path
    WHERE a.storage_type = 'pending' AND excluded.storage_type <> 'pending'
    RETURNING (xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted) FROM upserted
