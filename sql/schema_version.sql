-- The shape version sql/schema.sql last wrote.
SELECT coalesce(max(version), 0) FROM pharmload_schema
