-- verify: the keys whose stored row differs from the scrape's newest search (verify_outcome.sql).
CREATE TEMP TABLE verify_outcome (
    search_state   text,
    search_name    text,
    license_number text,
    file_order     bigint,
    row_id         bigint,
    problem        text
) ON COMMIT DROP
