"""The database side: connections and SQL (pg.py), the load's transaction (merge.py) and the process
it runs in (process.py), verification, the embedded server. The only modules that import psycopg;
kept empty so that importing one of them never imports the driver."""
