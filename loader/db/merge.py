"""The database side of one load: lock, stage by COPY, one merge, the run record, one commit.

Everything a load writes goes through one `LoadTransaction`, so either all of it commits or none of
it does; the `load_runs` row is written in the same transaction (as pg-bulk-ingest commits its
progress marker with the data), which makes the database itself the record of what committed.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from loader.db import locks, pg
from loader.errors import LockBusyError
from loader.report import MergeCounts

if TYPE_CHECKING:
    from loader.settings import Settings

COPY_BLOCK = 4 << 20
TEMP_BUFFERS = "512MB"  # an upper bound the session may use, allocated only as staging grows
# The merge's sorts and hashes of 20,000 files' staging (4-13 MB each) spilled to disk at the default
# 4MB: 0.1 s of a 0.6 s merge. Per sort or hash node, for this transaction only.
WORK_MEM = "64MB"
# Statistics of the staging tables from a 3,000-row sample, not 30,000: ANALYZE went from ~0.10 s
# to ~0.02 s at 20,000 files, and the merge's row estimates stayed within 15% of the true counts.
STAGING_STATISTICS_TARGET = "10"
LOCK_NAMESPACE = 0x70686C64  # "phld": keeps our advisory locks apart from other applications'


class LoadTransaction:
    """One load's transaction on a connection of its own: begin() opens it, commit() or rollback()
    ends the transaction, close() the connection."""

    def __init__(self, dsn: str, secrets: tuple[str, ...] = ()) -> None:
        self.dsn = dsn
        self.secrets = secrets
        self.dataset_id: int | None = None
        self._conn: psycopg.Connection[Any] | None = None

    @property
    def conn(self) -> psycopg.Connection[Any]:
        assert self._conn is not None, "begin() opens the connection"
        return self._conn

    def begin(self, settings: Settings) -> int:
        """Connect, lock the tag, make sure schema and dataset exist, create the staging tables;
        returns the dataset id."""
        self._conn = pg.connect(self.dsn, self.secrets)
        tag = settings.tag or ""
        with pg.translated(self.secrets):
            # Staging lives in temp tables: keep them in memory rather than spilling to disk; and
            # the merge's settings (above), all for this transaction only.
            self.conn.execute("SELECT set_config('temp_buffers', %s, true), set_config('work_mem', %s, true), "
                              "set_config('default_statistics_target', %s, true)",
                              (TEMP_BUFFERS, WORK_MEM, STAGING_STATISTICS_TARGET))
            if settings.statement_timeout_ms is not None:
                self.conn.execute("SELECT set_config('statement_timeout', %s, true)",
                                  (str(settings.statement_timeout_ms),))
            self._lock(tag, settings.lock_wait)
            self._share_gc_lock(settings.lock_wait)
            pg.ensure_schema(self.conn, migrate=False)
            row = self.conn.execute(pg.statement("ensure_dataset"),
                                    {"tag": tag, "description": settings.description,
                                     "created_by": settings.created_by}).fetchone()
            assert row is not None
            self.dataset_id = int(row[0])
            for table in ("create_stage_rows", "create_stage_superseded", "create_stage_images"):
                self.conn.execute(pg.statement(table))
        return self.dataset_id

    def _lock(self, tag: str, wait: bool) -> None:
        """One load per tag at a time: an advisory lock held until this transaction ends."""
        fn = "pg_advisory_xact_lock" if wait else "pg_try_advisory_xact_lock"
        query = sql.SQL("SELECT {}(%s, hashtext(%s))").format(sql.Identifier(fn))
        row = self.conn.execute(query, (LOCK_NAMESPACE, tag)).fetchone()
        if not wait and row is not None and row[0] is False:
            raise LockBusyError(f"another load into tag {tag!r} is running; try again when it ends")

    def _share_gc_lock(self, wait: bool) -> None:
        """Keep gc out until this load commits: gc must not delete a screenshot this load found in
        the store and is about to reference (db/locks.py). Taken before anything asks the store."""
        if not locks.try_take(self.conn, locks.GC_NAMESPACE, 0, shared=True, wait=wait):
            raise LockBusyError("a gc is running (it deletes unreferenced screenshots); try again when it ends")

    def stage(self, table: str, columns: tuple[str, ...], data: bytes) -> None:
        """COPY CSV (no header) into one of the staging tables. The caller makes the CSV: the
        transaction may run in the db process (db/process.py), which never imports polars."""
        stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
            sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns)))
        with pg.translated(self.secrets), self.conn.cursor() as cur, cur.copy(stmt) as copy:
            view = memoryview(data)
            for start in range(0, len(view), COPY_BLOCK):
                copy.write(view[start:start + COPY_BLOCK])

    def merge(self, distinct: int) -> MergeCounts:
        """Upsert image rows, then the one INSERT ... ON CONFLICT into search_results. distinct: the
        rows the loader left after listing the superseded ones (one per key), for the unchanged count."""
        with pg.translated(self.secrets):
            # Temp tables have no statistics; without them the planner guesses and may nest loops.
            # (From a STAGING_STATISTICS_TARGET sample: begin() set it for this transaction.)
            self.conn.execute(pg.statement("analyze_staging"))
            images = self.conn.execute(pg.statement("upsert_image_assets")).fetchone()
            row = self.conn.execute(pg.statement("merge_search_results"),
                                    {"dataset_id": self.dataset_id}).fetchone()
        assert row is not None and images is not None
        inserted, updated = (int(x) for x in row)
        return MergeCounts(inserted=inserted, updated=updated, unchanged=distinct - inserted - updated,
                           images_new=int(images[0]), images_distinct=int(images[1]))

    def committed(self, load_id: str) -> bool:
        """Whether the load with this id committed: its load_runs row exists."""
        with pg.translated(self.secrets):
            return self.conn.execute(pg.statement("find_load_run"), {"load_id": load_id}).fetchone() is not None

    def terminate_backend(self, dsn: str) -> None:
        """Test-only fault: ask the server, from another session, to drop this load's connection."""
        pid = self.conn.info.backend_pid
        with pg.connect(dsn, self.secrets, autocommit=True) as side:
            side.execute("SELECT pg_terminate_backend(%s)", (pid,))

    def record_run(self, tag: str, started_at: datetime, counts: dict[str, Any], report: dict[str, Any],
                   load_id: str, manifest_digest: str | None = None, status: str = "ok") -> int:
        params = {"dataset_id": self.dataset_id, "tag": tag, "load_id": load_id, "manifest_digest": manifest_digest,
                  "status": status, "started_at": started_at,
                  "report": Jsonb(report, dumps=lambda o: orjson.dumps(o).decode()), **counts}
        with pg.translated(self.secrets):
            row = self.conn.execute(pg.statement("record_load_run"), params).fetchone()
        assert row is not None
        return int(row[0])

    def commit(self) -> None:
        with pg.translated(self.secrets):
            self.conn.commit()

    def rollback(self) -> None:
        # When the connection is gone, the server rolls back the unfinished transaction itself.
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.rollback()

    def cancel(self) -> None:
        """Stop the statement running now, if any, from another thread: a load that failed must not
        wait for its db lane to finish a wait for the tag's lock. It opens a connection of its own
        for the request, so only call it when something may be running."""
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.cancel_safe(timeout=5)

    def close(self) -> None:
        """Roll back what did not commit and close the connection."""
        self.rollback()
        if self._conn is not None:
            self._conn.close()
