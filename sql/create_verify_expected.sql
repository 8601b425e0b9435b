-- What a load meant to write: one row per key, with the md5 of its canonical text (frame.content_canon).
CREATE TEMP TABLE verify_expected (
    search_state   text,
    search_name    text,
    license_number text,
    search_ts_us   bigint,
    content_md5    text
) ON COMMIT DROP
