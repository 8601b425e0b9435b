-- What shape the database is in: no tables, the current shape, or an old PharmChecker shape.
SELECT
    to_regclass('search_results') IS NOT NULL AS has_search_results,
    to_regclass('load_runs') IS NOT NULL AS has_load_runs,
    to_regclass('pharmload_schema') IS NOT NULL AS has_version,
    EXISTS (
        SELECT 1
        FROM pg_index i
        WHERE i.indrelid = to_regclass('search_results')
          AND i.indisunique
          AND i.indnullsnotdistinct
          AND ARRAY(
                SELECT a.attname::text
                FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k (attnum, ord)
                JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                ORDER BY k.ord
              ) = ARRAY['dataset_id', 'search_state', 'search_name', 'license_number']
    ) AS has_current_key
