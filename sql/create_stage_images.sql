-- Screenshots of one load, by the path the rows refer to them with; gone at commit or rollback.
CREATE TEMP TABLE stage_image_assets (
    image_rel    text,
    content_hash text,
    storage_path text,
    storage_type text,
    file_size    bigint,
    content_type text,
    width        integer,
    height       integer
) ON COMMIT DROP
