-- Bring a search_results table made by the old PharmChecker scripts to the current shape, losing
-- no row. Old shapes: UNIQUE (dataset_id, search_state, license_number) or the same with
-- search_name, NULLs distinct; meta/raw holding JSON *strings* (or typed json/text) rather than
-- objects; search_ts without time zone. Rows that collide under the new key (NULL license numbers
-- are now equal) keep the newest in search_results; the others move to
-- search_results_migration_conflicts, so nothing is deleted. Idempotent: a no-op on the new shape.
DO $migrate$
DECLARE
    con record;
    fk record;
    col text;
    r record;
BEGIN
    IF to_regclass('search_results') IS NULL THEN
        RETURN;
    END IF;

    -- Columns the old scripts may not have.
    ALTER TABLE search_results ADD COLUMN IF NOT EXISTS search_name text;
    ALTER TABLE search_results ADD COLUMN IF NOT EXISTS license_name text;
    ALTER TABLE search_results ADD COLUMN IF NOT EXISTS result_status text;
    ALTER TABLE search_results ADD COLUMN IF NOT EXISTS image_hash text;
    ALTER TABLE search_results ADD COLUMN IF NOT EXISTS meta jsonb;
    ALTER TABLE search_results ADD COLUMN IF NOT EXISTS raw jsonb;
    ALTER TABLE search_results ADD COLUMN IF NOT EXISTS created_at timestamptz NOT NULL DEFAULT now();
    ALTER TABLE search_results ADD COLUMN IF NOT EXISTS updated_at timestamptz NOT NULL DEFAULT now();

    -- Text or json columns become jsonb; search_ts without zone is taken as UTC.
    FOREACH col IN ARRAY ARRAY['meta', 'raw'] LOOP
        IF (SELECT data_type FROM information_schema.columns
            WHERE table_name = 'search_results' AND column_name = col
              AND table_schema = current_schema()) <> 'jsonb' THEN
            EXECUTE format('ALTER TABLE search_results ALTER COLUMN %I TYPE jsonb USING %I::text::jsonb', col, col);
        END IF;
    END LOOP;
    IF (SELECT data_type FROM information_schema.columns
        WHERE table_name = 'search_results' AND column_name = 'search_ts'
          AND table_schema = current_schema()) = 'timestamp without time zone' THEN
        ALTER TABLE search_results ALTER COLUMN search_ts TYPE timestamptz USING search_ts AT TIME ZONE 'UTC';
    END IF;

    -- JSON strings holding JSON objects become the objects; a string that is not JSON stays as is.
    FOR r IN SELECT id FROM search_results
             WHERE jsonb_typeof(meta) = 'string' OR jsonb_typeof(raw) = 'string' LOOP
        BEGIN
            UPDATE search_results
            SET meta = CASE WHEN jsonb_typeof(meta) = 'string' THEN (meta #>> '{}')::jsonb ELSE meta END,
                raw  = CASE WHEN jsonb_typeof(raw) = 'string' THEN (raw #>> '{}')::jsonb ELSE raw END
            WHERE id = r.id;
        EXCEPTION WHEN invalid_text_representation THEN
            NULL;
        END;
    END LOOP;
    UPDATE search_results
    SET result_status = CASE WHEN license_number IS NULL THEN 'not_found' ELSE 'found' END
    WHERE result_status IS NULL;

    -- Drop every old unique constraint and index except the primary key.
    FOR con IN SELECT conname FROM pg_constraint
               WHERE conrelid = 'search_results'::regclass AND contype = 'u'
                 AND conname <> 'search_results_dataset_search_license_key' LOOP
        EXECUTE format('ALTER TABLE search_results DROP CONSTRAINT %I', con.conname);
    END LOOP;
    FOR con IN SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
               WHERE i.indrelid = 'search_results'::regclass AND i.indisunique AND NOT i.indisprimary
                 AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid) LOOP
        EXECUTE format('DROP INDEX %I', con.relname);
    END LOOP;

    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = 'search_results'::regclass
                   AND conname = 'search_results_dataset_search_license_key') THEN
        -- Keep the newest row per new key; set the others aside. Rows of other tables that point
        -- at a row set aside (PharmChecker's match_scores, images) are re-pointed to the kept row
        -- first, so that no ON DELETE CASCADE takes them with it.
        CREATE TABLE IF NOT EXISTS search_results_migration_conflicts (LIKE search_results);
        DROP TABLE IF EXISTS pg_temp.migration_moves;
        CREATE TEMP TABLE migration_moves AS
        SELECT id AS drop_id, keep_id FROM (
            SELECT id,
                   first_value(id) OVER w AS keep_id,
                   row_number() OVER w AS rn
            FROM search_results
            WINDOW w AS (PARTITION BY dataset_id, search_state, search_name, license_number
                         ORDER BY search_ts DESC NULLS LAST, id DESC)
        ) ranked
        WHERE rn > 1;
        FOR fk IN SELECT c.conrelid::regclass AS child, a.attname AS col
                  FROM pg_constraint c
                  JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
                  WHERE c.contype = 'f' AND c.confrelid = 'search_results'::regclass
                    AND array_length(c.conkey, 1) = 1 LOOP
            EXECUTE format('UPDATE %s t SET %I = m.keep_id FROM pg_temp.migration_moves m WHERE t.%I = m.drop_id',
                           fk.child, fk.col, fk.col);
        END LOOP;
        WITH moved AS (
            DELETE FROM search_results s USING pg_temp.migration_moves m
            WHERE s.id = m.drop_id
            RETURNING s.*
        )
        INSERT INTO search_results_migration_conflicts SELECT * FROM moved;
        DROP TABLE pg_temp.migration_moves;
        ALTER TABLE search_results ADD CONSTRAINT search_results_dataset_search_license_key
            UNIQUE NULLS NOT DISTINCT (dataset_id, search_state, search_name, license_number);
    END IF;
END
$migrate$
