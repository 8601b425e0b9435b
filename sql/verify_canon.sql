-- A stored row's canonical fields (frame.content_canon, then the screenshot's hash), for verify:
-- NULL as \N, dates as days since 1970-01-01, search_ts as epoch microseconds. Joined by U+001F
-- and md5'd, it is the digest the scrape's row has (scan/digest.py); element by element, it names
-- the columns that differ (digest.CANON_FIELDS).
ARRAY[coalesce(r.search_state, '\N'), coalesce(r.search_name, '\N'), coalesce(r.license_number, '\N'),
      coalesce(r.license_status, '\N'), coalesce(r.license_name, '\N'), coalesce(r.license_type, '\N'),
      coalesce(r.address, '\N'), coalesce(r.city, '\N'), coalesce(r.state, '\N'), coalesce(r.zip, '\N'),
      coalesce(r.result_status, '\N'),
      coalesce((r.issue_date - date '1970-01-01')::text, '\N'),
      coalesce((r.expiration_date - date '1970-01-01')::text, '\N'),
      ((extract(epoch FROM r.search_ts) * 1000000)::bigint)::text,
      coalesce(r.image_hash, '\N')]
