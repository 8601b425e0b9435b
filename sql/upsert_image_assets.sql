-- One row per distinct screenshot; a screenshot already known keeps its row.
WITH inserted AS (
    INSERT INTO image_assets (content_hash, storage_path, storage_type, file_size, content_type, width, height)
    SELECT DISTINCT ON (content_hash)
           content_hash, storage_path, storage_type, file_size, content_type, width, height
    FROM stage_image_assets
    WHERE content_hash IS NOT NULL
    ORDER BY content_hash
    ON CONFLICT (content_hash) DO NOTHING
    RETURNING 1
)
SELECT count(*) FROM inserted
