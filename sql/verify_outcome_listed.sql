-- verify: the first keys of each problem (in key order), with the stored row's canonical fields.
SELECT o.search_state, o.search_name, o.license_number, o.file_order, o.problem,
       CASE WHEN r.id IS NULL THEN NULL ELSE {canon} END AS stored_fields
FROM (SELECT *, row_number() OVER (PARTITION BY problem
                                   ORDER BY search_state, search_name, license_number) AS nth
      FROM verify_outcome) o
LEFT JOIN search_results r ON r.id = o.row_id
WHERE o.nth <= %(listed)s
ORDER BY o.search_state, o.search_name, o.license_number, o.problem
