-- Statistics for the screenshot staging table, so the image upsert is planned on real row counts.
-- The row merge needs none: it reads stage_search_results straight through.
ANALYZE stage_image_assets (image_rel, content_hash, storage_type)
