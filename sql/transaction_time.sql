-- The load transaction's timestamp: updated_at of every row it writes.
SELECT now()
