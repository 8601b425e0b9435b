-- gc: of these stored screenshots' hashes, those image_assets has no row for.
SELECT h FROM unnest(%(hashes)s::text[]) AS h
WHERE NOT EXISTS (SELECT 1 FROM image_assets a WHERE a.content_hash = h)
