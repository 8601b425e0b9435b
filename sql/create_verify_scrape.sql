-- verify: every row of the scrape as the load would read it, with its digest (scan/digest.py).
CREATE TEMP TABLE verify_scrape (
    search_state   text,
    search_name    text,
    license_number text,
    search_ts_us   bigint,
    file_order     bigint,
    lic_idx        integer,
    content_md5    text,
    image_hash     text
) ON COMMIT DROP
