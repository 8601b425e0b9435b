"""Verification of a whole dataset: its rows against the scrape's digests, its screenshots against
the image store. `pharmload verify` and `load --verify-writes` both end here.

Everything is read in one REPEATABLE READ transaction (one snapshot; only temporary tables are
written, and it is rolled back) that holds gc's advisory lock shared, as a load does, so no gc
deletes screenshots mid-check: what is compared is one consistent state. The scrape's row
digests stream in by COPY, a chunk at a time, and the server does the pairing, so memory stays
bounded by a chunk; only the first MAX_LISTED problems of each kind are looked at in detail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import polars as pl
import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from loader.db import locks, pg
from loader.errors import VerifyMismatch
from loader.scan.digest import CANON_FIELDS, DIGEST_COLUMNS
from loader.scan.frame import to_csv

MAX_LISTED = 50
IMAGE_BATCH = 20_000     # screenshots asked of the store at a time
FAILURES = ("missing", "values differ", "older than the scrape")
INFO = ("not in scrape", "newer in database")
Key = tuple[str, str, str | None]
# For each listed 'values differ' key and the file its newest search is in: the scrape's fields.
FieldsOf = Callable[[list[tuple[Key, int]]], dict[Key, list[str]]]


class _Store(Protocol):
    storage_type: str

    def sizes(self, hashes: list[str]) -> dict[str, int]: ...
    def rehash(self, content_hash: str) -> str | None: ...


def key_text(key: Iterable[Any]) -> str:
    """`TX / Acme / license TX9`, as the report and the messages name a key."""
    state, name, number = key
    return f"{state} / {name} / " + (f"license {number}" if number is not None else "no license")


def _with_canon(name: str) -> sql.Composed:
    return pg.statement(name).format(canon=pg.statement("verify_canon"))


def _copy_digests(conn: psycopg.Connection[Any], digests: Iterable[pl.DataFrame]) -> None:
    conn.execute(pg.statement("create_verify_scrape"))
    conn.execute(pg.statement("create_verify_outcome"))
    columns = sql.SQL(", ").join(map(sql.Identifier, DIGEST_COLUMNS))
    copy = sql.SQL("COPY verify_scrape ({}) FROM STDIN (FORMAT csv)").format(columns)
    with conn.cursor() as cur, cur.copy(copy) as cp:
        for part in digests:
            if part.height:
                cp.write(to_csv(part, DIGEST_COLUMNS))
    conn.execute("ANALYZE verify_scrape")


def _differing(stored: list[str] | None, scraped: list[str] | None) -> str:
    if stored is None or scraped is None:
        return "values differ"
    names = [n for n, a, b in zip(CANON_FIELDS, stored, scraped, strict=False) if a != b]
    return f"values differ ({', '.join(names)})" if names else "values differ"


def _rows(conn: psycopg.Connection[Any], dataset_id: int, digests: Iterable[pl.DataFrame],
          fields: FieldsOf | None, out: dict[str, Any]) -> None:
    """Pair the scrape's newest row per key with the stored ones; fill out's row figures."""
    _copy_digests(conn, digests)
    params = {"dataset_id": dataset_id, "listed": MAX_LISTED}
    conn.execute(_with_canon("verify_outcome"), params)
    counts = {str(p): int(n) for p, n in conn.execute(pg.statement("verify_outcome_counts"), params).fetchall()}
    with conn.cursor(row_factory=dict_row) as cur:
        listed = cur.execute(_with_canon("verify_outcome_listed"), params).fetchall()
    differ = [((r["search_state"], r["search_name"], r["license_number"]), r["file_order"]) for r in listed
              if r["problem"] == "values differ"]
    scraped = fields(differ) if fields and differ else {}
    for r in listed:
        key: Key = (r["search_state"], r["search_name"], r["license_number"])
        problem = r["problem"]
        if problem == "values differ":
            problem = _differing(r["stored_fields"], scraped.get(key))
        (out["mismatches"] if r["problem"] in FAILURES else out["info"]).append(
            {"key": list(key), "problem": problem})
    out["checked"] = counts.get("stored", 0) - counts.get("not in scrape", 0) + counts.get("missing", 0)
    out["problems"].update({p: counts[p] for p in FAILURES if counts.get(p)})
    out["info_count"] = {p.replace(" ", "_"): counts[p] for p in INFO if counts.get(p)}


def _sha256_ok(store: _Store, content_hash: str) -> bool:
    return store.rehash(content_hash) == content_hash


def _images(conn: psycopg.Connection[Any], dataset_id: int, store: _Store, deep: bool, threads: int,
            out: dict[str, Any], advance: Callable[[int], None]) -> None:
    """Each referenced screenshot: an image_assets row, a store object of its size (deep: its hash)."""
    problems: list[dict[str, str]] = []
    checked = 0
    with conn.cursor(name="verify_images", row_factory=dict_row) as cur, \
            ThreadPoolExecutor(max(1, threads), thread_name_prefix="pharmload-rehash") as pool:
        cur.execute(pg.statement("verify_dataset_images"), {"dataset_id": dataset_id})
        while batch := cur.fetchmany(IMAGE_BATCH):
            checked += len(batch)
            known = [r for r in batch if r["file_size"] is not None]
            problems += [{"image": r["image_hash"], "problem": "no image_assets row"} for r in batch
                         if r["file_size"] is None]
            sizes = store.sizes([r["image_hash"] for r in known])
            whole: list[str] = []
            for r in known:
                h, size = r["image_hash"], sizes.get(r["image_hash"])
                if size is None:
                    problems.append({"image": h, "problem": f"not in the store ({r['storage_type']})"})
                elif size != r["file_size"]:
                    problems.append({"image": h, "problem": f"stored size {size} != recorded {r['file_size']}"})
                else:
                    whole.append(h)
            if deep:
                bad = [h for h, ok in zip(whole, pool.map(lambda h: _sha256_ok(store, h), whole), strict=True)
                       if not ok]
                problems += [{"image": h, "problem": "stored bytes do not hash to their name (or cannot be read)"}
                             for h in bad]
            advance(len(batch))
    out["images_checked"] = checked
    out["mismatches"] += problems[:MAX_LISTED]
    if problems:
        out["problems"]["screenshots"] = len(problems)


def check(dsn: str, secrets: tuple[str, ...], tag: str, store: _Store, *,
          digests: Iterable[pl.DataFrame] | None = None, fields: FieldsOf | None = None, deep: bool = False,
          threads: int = 4, timeout_ms: int | None = None, advance: Callable[[int], None] = lambda n: None
          ) -> dict[str, Any]:
    """The report's verify section for the tag's dataset; without digests only its screenshots are
    checked. VerifyMismatch when there is no such dataset."""
    out: dict[str, Any] = {"result": "ok", "checked": 0, "images_checked": 0, "mismatches": [],
                           "mismatch_count": 0, "problems": {}, "info": [], "info_count": {}}
    with pg.connect(dsn, secrets) as conn, pg.translated(secrets):
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        try:
            if timeout_ms is not None:
                conn.execute("SELECT set_config('statement_timeout', %s, true)", (str(timeout_ms),))
            # Then: a gc that runs finishes before this snapshot is used, and none starts until
            # the rollback. (A gc that commits between the snapshot and the lock removed nothing
            # these rows refer to: it deletes only what no row refers to.)
            locks.try_take(conn, locks.GC_NAMESPACE, 0, shared=True)
            found = conn.execute("SELECT to_regclass('datasets') IS NOT NULL").fetchone()
            row = (conn.execute(pg.statement("drop_find_dataset"), {"tag": tag}).fetchone()
                   if found and found[0] else None)
            if row is None:
                raise VerifyMismatch(f"verify: tag {tag!r} has no dataset in this database; nothing to verify")
            if digests is not None:
                _rows(conn, int(row[0]), digests, fields, out)
            _images(conn, int(row[0]), store, deep, threads, out, advance)
        finally:
            conn.rollback()
    out["mismatch_count"] = sum(out["problems"].values())
    out["mismatches"] = out["mismatches"][:MAX_LISTED]
    out["result"] = "mismatch" if out["mismatch_count"] else "ok"
    return out

