-- drop: the foreign keys of other tables (PharmChecker's match_scores and the like) that point at
-- rows a drop removes, with their ON DELETE action ('c' cascade, 'n' set null, 'd' set default,
-- 'a' no action, 'r' restrict) and their columns in key order.
SELECT c.conname::text AS name, cn.nspname::text AS child_schema, cc.relname::text AS child_table,
       pc.relname::text AS parent_table, c.confdeltype::text AS on_delete,
       array_agg(ca.attname::text ORDER BY k.ord) AS child_columns,
       array_agg(pa.attname::text ORDER BY k.ord) AS parent_columns
FROM pg_constraint c
JOIN pg_class cc ON cc.oid = c.conrelid
JOIN pg_namespace cn ON cn.oid = cc.relnamespace
JOIN pg_class pc ON pc.oid = c.confrelid
CROSS JOIN LATERAL unnest(c.conkey, c.confkey) WITH ORDINALITY AS k (child_att, parent_att, ord)
JOIN pg_attribute ca ON ca.attrelid = c.conrelid AND ca.attnum = k.child_att
JOIN pg_attribute pa ON pa.attrelid = c.confrelid AND pa.attnum = k.parent_att
WHERE c.contype = 'f'
  AND c.confrelid IN (to_regclass('search_results'), to_regclass('datasets'), to_regclass('load_runs'))
  AND c.conrelid NOT IN (COALESCE(to_regclass('search_results'), 0::regclass),
                         COALESCE(to_regclass('datasets'), 0::regclass),
                         COALESCE(to_regclass('load_runs'), 0::regclass))
GROUP BY c.oid, c.conname, cn.nspname, cc.relname, pc.relname, c.confdeltype
ORDER BY cc.relname, c.conname
