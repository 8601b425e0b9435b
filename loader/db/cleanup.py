"""The database side of `drop` and `gc`: one transaction each, on a connection of its own.

The commands (commands/drop.py, commands/gc.py) decide what to do between the calls: a drop asks
for confirmation while it holds the tag's lock, so the counts it showed are what it removes; gc
deletes store objects while it holds its exclusive lock, and commits after (db/locks.py).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from loader.db import locks, pg
from loader.db.merge import LOCK_NAMESPACE

# The column a table's rows of one dataset are found by, for the tables a drop deletes from.
DATASET_COLUMN = {"search_results": "dataset_id", "load_runs": "dataset_id", "datasets": "id"}
HASHES_PER_QUERY = 10_000  # gc_rowless: hashes asked about at a time


@dataclass(frozen=True)
class Reference:
    """Rows of another table that point at rows a drop removes, through one foreign key."""

    constraint: str
    table: str          # schema-qualified
    parent: str         # search_results, datasets or load_runs
    on_delete: str      # 'c' cascade, 'n' set null, 'd' set default, 'a' no action, 'r' restrict
    rows: int

    @property
    def blocks(self) -> bool:
        """Whether the drop cannot go ahead: the key neither cascades nor clears, and rows use it."""
        return self.on_delete in ("a", "r") and self.rows > 0

    @property
    def action(self) -> str:
        return {"c": "ON DELETE CASCADE: removed with them", "n": "ON DELETE SET NULL: their reference cleared",
                "d": "ON DELETE SET DEFAULT: their reference reset"}.get(self.on_delete, "no ON DELETE action")


class CleanupTransaction:
    """A drop's or a gc's transaction: the methods run in it; commit() ends it, close() rolls back
    whatever did not commit and closes the connection."""

    def __init__(self, dsn: str, secrets: tuple[str, ...] = ()) -> None:
        self.secrets = secrets
        self.conn = pg.connect(dsn, secrets)

    def has_schema(self) -> bool:
        with pg.translated(self.secrets):
            return bool(pg.schema_state(self.conn)["has_search_results"])

    # --- drop ------------------------------------------------------------------------------------

    def lock_tag(self, tag: str, wait: bool) -> None:
        """The tag's lock, the one its loads hold: a running load of the tag ends before a drop."""
        with pg.translated(self.secrets):
            locks.take(self.conn, LOCK_NAMESPACE, tag, wait=wait,
                       busy=f"a load of tag {tag!r} is running; try again when it ends",
                       waiting=f"waiting for the running load of tag {tag!r} to end")

    def dataset_id(self, tag: str) -> int | None:
        with pg.translated(self.secrets):
            row = self.conn.execute(pg.statement("drop_find_dataset"), {"tag": tag}).fetchone()
        return int(row[0]) if row else None

    def drop_counts(self, dataset_id: int) -> dict[str, int]:
        """Rows, load runs, screenshots referenced, and of those the ones no other dataset uses."""
        return {k: int(v) for k, v in self._one("drop_counts", {"dataset_id": dataset_id}).items()}

    def references(self, dataset_id: int) -> list[Reference]:
        """Every foreign key of another table into the rows a drop removes, with its rows of this
        dataset."""
        with pg.translated(self.secrets), self.conn.cursor(row_factory=dict_row) as cur:
            keys = cur.execute(pg.statement("drop_references")).fetchall()
            found = []
            for k in keys:
                count = sql.SQL("SELECT count(*) FROM {}.{} WHERE ({}) IN (SELECT {} FROM {} WHERE {} = %s)").format(
                    sql.Identifier(k["child_schema"]), sql.Identifier(k["child_table"]),
                    sql.SQL(", ").join(map(sql.Identifier, k["child_columns"])),
                    sql.SQL(", ").join(map(sql.Identifier, k["parent_columns"])),
                    sql.Identifier(k["parent_table"]), sql.Identifier(DATASET_COLUMN[k["parent_table"]]))
                row = self.conn.execute(count, (dataset_id,)).fetchone()
                assert row is not None
                found.append(Reference(k["name"], f"{k['child_schema']}.{k['child_table']}", k["parent_table"],
                                       k["on_delete"], int(row[0])))
        return found

    def drop_dataset(self, dataset_id: int) -> dict[str, int]:
        """Delete the dataset, its rows and load runs (not committed yet); what was deleted."""
        return {k: int(v) for k, v in self._one("drop_dataset", {"dataset_id": dataset_id}).items()}

    # --- gc --------------------------------------------------------------------------------------

    def lock_gc(self, wait: bool) -> None:
        """gc's exclusive lock: waits for every running load to end, and keeps new ones waiting."""
        with pg.translated(self.secrets):
            locks.take(self.conn, locks.GC_NAMESPACE, 0, wait=wait,
                       busy="a load (or another gc) is running; try again when it ends",
                       waiting="waiting for the running loads (or another gc) to end")

    def collect(self, storage_type: str) -> list[tuple[str, str, int]]:
        """Delete the unreferenced screenshot rows of this store (not committed yet); returns their
        (content hash, storage path, file size)."""
        with pg.translated(self.secrets):
            rows = self.conn.execute(pg.statement("gc_collect"), {"storage_type": storage_type}).fetchall()
        return [(str(h), str(p), int(s)) for h, p, s in rows]

    def rowless(self, hashes: list[str]) -> set[str]:
        """The hashes image_assets has no row for."""
        found: set[str] = set()
        with pg.translated(self.secrets):
            for start in range(0, len(hashes), HASHES_PER_QUERY):
                part = hashes[start:start + HASHES_PER_QUERY]
                found.update(r[0] for r in self.conn.execute(pg.statement("gc_rowless"), {"hashes": part}))
        return found

    def image_counts(self) -> dict[str, int]:
        """Screenshot rows: all, unreferenced, pending (an upload failed)."""
        return {k: int(v) for k, v in self._one("image_counts").items()}

    # --- both ------------------------------------------------------------------------------------

    def _one(self, name: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        with pg.translated(self.secrets):
            rows = pg.fetch_all(self.conn, name, params)
        return rows[0]

    def commit(self) -> None:
        with pg.translated(self.secrets):
            self.conn.commit()

    def close(self) -> None:
        with contextlib.suppress(psycopg.Error):  # a connection that is gone was rolled back by the server
            self.conn.rollback()
        self.conn.close()
