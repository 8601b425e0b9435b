-- status, gc: the screenshot rows, how many of them no search_results row references (any dataset),
-- and how many wait for an upload that failed ('pending': the next load of their files uploads them).
SELECT count(*) AS rows,
       count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM search_results r
                                          WHERE r.image_hash = a.content_hash)) AS unreferenced,
       count(*) FILTER (WHERE a.storage_type = 'pending') AS pending
FROM image_assets a
