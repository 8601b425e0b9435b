"""--verify-writes: after the commit, read back from the database what the load meant to write.

Rows are compared by a per-row content hash computed in the frame and again in SQL from the stored
row, so a wrong value is found, not only a missing row. Screenshots referenced by the rows the load
wrote must have an image_assets row and be in the store with that size (deep: and that hash).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, Protocol

import polars as pl
import psycopg

from loader.db import pg
from loader.scan.frame import EXPECTED_COLUMNS, to_csv
from loader.stores.local import BLOCK

MAX_LISTED = 50


class _Store(Protocol):
    def sizes(self, hashes: list[str]) -> dict[str, int]: ...
    def local_path(self, content_hash: str) -> str | None: ...


def _copy_expected(conn: psycopg.Connection[Any], expected: pl.DataFrame) -> None:
    conn.execute(pg.statement("create_verify_expected"))
    with conn.cursor() as cur, cur.copy(
            "COPY verify_expected (search_state, search_name, license_number, search_ts_us, content_md5) "
            "FROM STDIN (FORMAT csv)") as copy:
        copy.write(to_csv(expected, EXPECTED_COLUMNS))


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(BLOCK):
            h.update(block)
    return h.hexdigest()


def _image_problems(images: list[dict[str, Any]], store: _Store, deep: bool) -> list[dict[str, str]]:
    problems: list[dict[str, str]] = []
    known = [r for r in images if r["file_size"] is not None]
    problems += [{"image": r["image_hash"], "problem": "no image_assets row"} for r in images
                 if r["file_size"] is None]
    sizes = store.sizes([r["image_hash"] for r in known])
    for r in known:
        h, size = r["image_hash"], sizes.get(r["image_hash"])
        if size is None:
            problems.append({"image": h, "problem": f"not in the store ({r['storage_type']})"})
        elif size != r["file_size"]:
            problems.append({"image": h, "problem": f"stored size {size} != recorded {r['file_size']}"})
        elif deep and (path := store.local_path(h)) is not None and _sha256(path) != h:
            problems.append({"image": h, "problem": "stored bytes do not hash to their name"})
    return problems


def verify(dsn: str, secrets: tuple[str, ...], dataset_id: int, load_ts: datetime, written: int,
           expected: pl.DataFrame, store: _Store, deep: bool) -> dict[str, Any]:
    """Compare the database (and store) with the expected rows; returns the report's verify section."""
    with pg.connect(dsn, secrets) as conn, pg.translated(secrets):
        _copy_expected(conn, expected)
        params = {"dataset_id": dataset_id, "load_ts": load_ts}
        rows = pg.fetch_all(conn, "verify_rows", params)
        count = conn.execute(pg.statement("verify_written_count"), params).fetchone()
        images = pg.fetch_all(conn, "verify_images", params)
        conn.rollback()
    mismatches: list[dict[str, Any]] = [
        {"key": [r["search_state"], r["search_name"], r["license_number"]], "problem": r["problem"]} for r in rows]
    stored_count = int(count[0]) if count else 0
    if stored_count != written:
        mismatches.append({"problem": f"{stored_count} rows carry this load's time, the merge wrote {written}"})
    mismatches += _image_problems(images, store, deep)
    return {"result": "ok" if not mismatches else "mismatch", "checked": expected.height,
            "images_checked": len(images), "mismatches": mismatches[:MAX_LISTED],
            "mismatch_count": len(mismatches)}

