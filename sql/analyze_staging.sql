-- Statistics for the staging tables, so the merge's joins are planned on real row counts.
ANALYZE stage_search_results, stage_files, stage_file_images, stage_image_assets
