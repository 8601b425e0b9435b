-- Find or create the tag's dataset; loading into an existing tag merges into it.
WITH found AS (
    SELECT id FROM datasets WHERE kind = 'states' AND tag = %(tag)s
), created AS (
    INSERT INTO datasets (kind, tag, description, created_by)
    SELECT 'states', %(tag)s, %(description)s, %(created_by)s
    WHERE NOT EXISTS (SELECT 1 FROM found)
    ON CONFLICT (kind, tag) DO NOTHING
    RETURNING id
)
SELECT id FROM found UNION ALL SELECT id FROM created
