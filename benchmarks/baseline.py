"""The old importer's way, rebuilt as a benchmark contender (see ../shared/seed/RESILIENT_IMPORTER.md).

`resilient_importer.py` itself is not in this repository; this module does what its documentation
says it did, against the same PostgreSQL schema, so that pharmload can be timed against it on the
same machine and server:

1. planning — walk the tree, read every ``*_parse.json`` (stdlib ``json``), resolve its screenshot;
2. SHA-256 — a ``ThreadPoolExecutor`` of ``--max-workers`` (16) threads hashes every screenshot;
3. upload — ``--max-concurrent-uploads`` (10) threads copy each new screenshot into a local store
   (``sha256/<h[0:2]>/<h[2:4]>/<h>.png``), then its ``image_assets`` row is written;
4. import — per-value Python cleaning (python-dateutil for every date), rows inserted in batches of
   ``--batch-size`` (25) with psycopg ``executemany``; a batch that hits a unique violation is
   rolled back and its rows are written one by one as upserts that keep the newer search
   (``ON CONFLICT ... DO UPDATE ... WHERE excluded.search_ts > search_results.search_ts``), one
   statement and one commit per row.

The cleaning and reject rules follow FORMAT.md as pharmload applies them, value by value, so the
end state (rows, image rows) is the same as pharmload's; the harness checks that before a time
counts. Only the WRITE path (and the per-value cleaning) is the old one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg import sql

from benchmarks.baseline_clean import STATES, Rejected, record_rows, required, timestamp, validate
from loader.db import pg
from loader.scan.parse import strip_nul

JSON_SUFFIX = "_parse.json"
MAX_JSON_BYTES = 10 * 1024 * 1024
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

COLUMNS = ("dataset_id", "search_name", "search_state", "search_ts", "license_number", "license_status",
           "license_name", "license_type", "address", "city", "state", "zip", "issue_date", "expiration_date",
           "result_status", "meta", "raw", "image_hash")
INSERT_ROW = sql.SQL("INSERT INTO search_results ({}) VALUES ({})").format(
    sql.SQL(", ").join(map(sql.Identifier, COLUMNS)), sql.SQL(", ").join([sql.Placeholder()] * len(COLUMNS)))
UPSERT_ROW = sql.SQL(
    "{} ON CONFLICT (dataset_id, search_state, search_name, license_number) DO UPDATE SET {}, updated_at = now() "
    "WHERE excluded.search_ts > search_results.search_ts"
).format(INSERT_ROW, sql.SQL(", ").join(
    sql.SQL("{} = excluded.{}").format(sql.Identifier(c), sql.Identifier(c)) for c in COLUMNS[3:]))
INSERT_IMAGE = (
    "INSERT INTO image_assets (content_hash, storage_path, storage_type, file_size, content_type, width, height) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (content_hash) DO NOTHING"
)
ENSURE_DATASET = (
    "INSERT INTO datasets (kind, tag, description, created_by) VALUES ('states', %s, %s, 'resilient_importer') "
    "ON CONFLICT (kind, tag) DO UPDATE SET tag = excluded.tag RETURNING id"
)


@dataclass
class WorkItem:
    """One search file: its rows (cleaned at import time) and its screenshot."""

    rel: str
    doc: dict[str, Any] | None = None
    image_rel: str | None = None
    reject: str | None = None


@dataclass
class Stats:
    phases: dict[str, float] = field(default_factory=dict)
    files: int = 0
    rejected: int = 0
    rows: int = 0
    batches: int = 0
    failed_batches: int = 0
    single_upserts: int = 0
    images_hashed: int = 0
    images_copied: int = 0


# --------------------------------------------------------------------------------------------
# Phases
# --------------------------------------------------------------------------------------------


def _walk(root: Path) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """(rel, path) of every search file, sorted by rel; every other file by rel."""
    jsons: list[tuple[str, str]] = []
    others: dict[str, str] = {}
    base = str(root)
    for folder, _dirs, files in os.walk(base):
        prefix = os.path.relpath(folder, base)
        for name in files:
            path = os.path.join(folder, name)
            rel = name if prefix == "." else f"{prefix}/{name}"
            if os.path.islink(path) and not os.path.realpath(path).startswith(base + os.sep):
                continue
            if name.endswith(JSON_SUFFIX):
                jsons.append((rel, path))
            else:
                others[rel] = path
    jsons.sort()
    return jsons, others


def resolve_image(rel: str, source: Any, index: dict[str, str]) -> str | None:
    """The file whose path relative to the states folder is the longest trailing part of source."""
    if not isinstance(source, str) or not source.strip():
        stem = rel[: -len(JSON_SUFFIX)] + ".png"
        return stem if stem in index else None
    parts = [p for p in source.replace("\x00", "").replace("\\", "/").split("/") if p not in ("", ".")]
    for start in range(len(parts)):
        tail = parts[start:]
        if ".." in tail:
            continue
        cand = "/".join(tail)
        if cand in index:
            return cand
    return None


def plan(root: Path, tz: ZoneInfo) -> tuple[list[WorkItem], dict[str, str]]:
    jsons, index = _walk(root)
    items: list[WorkItem] = []
    for rel, path in jsons:
        item = WorkItem(rel=rel)
        items.append(item)
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_JSON_BYTES + 1)
            if len(data) > MAX_JSON_BYTES:
                raise Rejected("too_large", "file too large")
            try:
                doc = json.loads(data.decode("utf-8-sig"))
            except ValueError:
                raise Rejected("invalid_json", "not valid UTF-8 JSON") from None
            meta, _result, _licenses = validate(doc)
            doc = strip_nul(doc)
            meta = doc["metadata"]
            required(meta, "pharmacy_name")
            if required(meta, "state").upper() not in STATES:
                raise Rejected("invalid_state", "not a US state")
            timestamp(meta.get("search_timestamp"), tz)
        except Rejected as exc:
            item.reject = exc.code
            continue
        except OSError:
            item.reject = "unreadable"
            continue
        item.doc = doc
        item.image_rel = resolve_image(rel, meta.get("source_image_file"), index)
    return items, index


def _sha256(path: str) -> tuple[str, int, str | None, int | None, int | None]:
    with open(path, "rb") as f:
        data = f.read()
    ctype = width = height = None
    if data.startswith(PNG_SIGNATURE) and data[12:16] == b"IHDR":
        ctype, width, height = "image/png", int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return hashlib.sha256(data).hexdigest(), len(data), ctype, width, height


def storage_path(content_hash: str) -> str:
    return f"sha256/{content_hash[:2]}/{content_hash[2:4]}/{content_hash}.png"


def _upload(store: Path, content_hash: str, src: str) -> bool:
    dst = store / storage_path(content_hash)
    if dst.is_file():
        return False
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=".up-")
    os.close(fd)
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)
    return True


def _batches(rows: list[Any], size: int) -> list[list[Any]]:
    return [rows[i:i + size] for i in range(0, len(rows), size)]


def run(args: argparse.Namespace) -> Stats:
    st = Stats()
    tz = ZoneInfo(args.source_timezone)

    t = time.perf_counter()
    items, index = plan(args.states_dir, tz)
    st.files = len(items)
    st.rejected = sum(1 for i in items if i.reject)
    st.phases["planning"] = time.perf_counter() - t

    t = time.perf_counter()
    wanted = sorted({i.image_rel for i in items if i.image_rel is not None})
    with ThreadPoolExecutor(max_workers=args.max_workers) as pool:
        hashed = dict(zip(wanted, pool.map(lambda rel: _sha256(index[rel]), wanted), strict=True))
    st.images_hashed = len(hashed)
    st.phases["sha256"] = time.perf_counter() - t

    conn = psycopg.connect(args.dsn, autocommit=True)
    with conn:
        with conn.transaction():
            conn.execute(pg.statement("schema"))  # sql/schema.sql, as pharmload creates it
            row = conn.execute(ENSURE_DATASET, (args.tag, args.description)).fetchone()
        assert row is not None
        dataset_id = int(row[0])

        t = time.perf_counter()
        first_rel: dict[str, str] = {}
        for rel, (h, *_rest) in hashed.items():
            first_rel.setdefault(h, rel)
        with ThreadPoolExecutor(max_workers=args.max_concurrent_uploads) as pool:
            copied = list(pool.map(lambda hr: _upload(args.image_dir, hr[0], index[hr[1]]), first_rel.items()))
        st.images_copied = sum(copied)
        image_rows = [(h, storage_path(h), "local", *hashed[rel][1:]) for h, rel in first_rel.items()]
        with conn.cursor() as cur:
            for batch in _batches(image_rows, args.batch_size):
                with conn.transaction():
                    cur.executemany(INSERT_IMAGE, batch)
        st.phases["upload"] = time.perf_counter() - t

        t = time.perf_counter()
        rows: list[tuple[Any, ...]] = []
        for item in items:
            if item.doc is not None:
                image_hash = hashed[item.image_rel][0] if item.image_rel is not None else None
                rows.extend(record_rows(item.doc, dataset_id, image_hash, tz))
        st.rows = len(rows)
        st.phases["cleaning"] = time.perf_counter() - t

        t = time.perf_counter()
        with conn.cursor() as cur:
            for batch in _batches(rows, args.batch_size):
                st.batches += 1
                try:
                    with conn.transaction():
                        cur.executemany(INSERT_ROW, batch)
                except psycopg.errors.UniqueViolation:
                    st.failed_batches += 1
                    for one in batch:  # _handle_batch_conflicts: one upsert (and commit) per row
                        cur.execute(UPSERT_ROW, one)
                        st.single_upserts += 1
        st.phases["import"] = time.perf_counter() - t
    return st


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.baseline", description=__doc__.split("\n\n")[0])
    p.add_argument("--dsn", required=True)
    p.add_argument("--states-dir", type=Path, required=True)
    p.add_argument("--tag", required=True)
    p.add_argument("--image-dir", type=Path, required=True)
    p.add_argument("--description")
    p.add_argument("--batch-size", type=int, default=25)
    p.add_argument("--max-workers", type=int, default=16)
    p.add_argument("--max-concurrent-uploads", type=int, default=10)
    p.add_argument("--source-timezone", default="UTC")
    args = p.parse_args(argv)
    logging.getLogger("psycopg").setLevel(logging.ERROR)  # "pipeline aborted" notes after a failed batch
    started = time.perf_counter()
    st = run(args)
    summary = {**st.__dict__, "phases": {k: round(v, 3) for k, v in st.phases.items()},
               "elapsed": round(time.perf_counter() - started, 3)}
    sys.stdout.write(json.dumps(summary) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
