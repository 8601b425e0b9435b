-- Which screenshot (path relative to its root) each loaded search file refers to.
CREATE TEMP TABLE stage_file_images (
    file_order bigint,
    image_rel  text
) ON COMMIT DROP
