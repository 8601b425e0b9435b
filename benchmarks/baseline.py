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
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from dateutil import parser as dateparser
from psycopg import sql
from psycopg.types.json import Jsonb

from loader.db import pg
from loader.scan.parse import strip_nul  # the same NUL rule; the rest of the cleaning is per value, the old way

JSON_SUFFIX = "_parse.json"
MAX_JSON_BYTES = 10 * 1024 * 1024
STATES = frozenset(
    "AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY "
    "NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY DC PR VI GU AS MP".split()
)
NULL_TOKENS = frozenset(("", "not on file", "not available", "n/a", "na", "---", "-", "none", "unknown", "null"))
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


class Rejected(Exception):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code


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
# Per-value cleaning (the old importer's _clean_date_field and friends), FORMAT.md's rules
# --------------------------------------------------------------------------------------------


def as_text(value: Any) -> str | None:
    """A scalar as text (license numbers are sometimes JSON numbers); objects and lists are NULL."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return None


def clean_text(value: Any) -> str | None:
    text = as_text(value)
    if text is None:
        return None
    text = text.replace("\x00", "").strip()
    return text or None


def clean_date(value: Any) -> date | None:
    """Null tokens and anything that is not a real date become NULL; python-dateutil parses the rest."""
    text = clean_text(value)
    if text is None or text.lower().rstrip(".").strip() in NULL_TOKENS:
        return None
    try:  # a date dateutil reads the same whatever the default: no missing part filled in
        a = dateparser.parse(text, default=datetime(2000, 1, 1))
        b = dateparser.parse(text, default=datetime(2001, 2, 2))
    except (ValueError, OverflowError, TypeError):
        return None
    if a != b or a.time() != datetime.min.time():
        return None
    return date(a.year, a.month, a.day)


def _required(meta: dict[str, Any], key: str) -> str:
    value = meta.get(key)
    text = as_text(value) if not isinstance(value, dict | list) else None
    text = text.replace("\x00", "").strip() if text is not None else ""
    if not text:
        raise Rejected("missing_field", f"metadata.{key} is absent, null or empty")
    return text


def _timestamp(value: Any, tz: ZoneInfo) -> datetime:
    if not isinstance(value, str) or not value.strip():
        raise Rejected("invalid_timestamp", "metadata.search_timestamp is absent, null or empty")
    try:
        ts = datetime.fromisoformat(value.strip())
    except ValueError:
        raise Rejected("invalid_timestamp", "metadata.search_timestamp is not ISO 8601") from None
    return ts.replace(tzinfo=tz) if ts.tzinfo is None else ts.astimezone(UTC)


def _is_placeholder(lic: dict[str, Any]) -> bool:
    def empty(v: Any) -> bool:
        return not v.strip() if isinstance(v, str) else v is None or v == [] or v == {}
    return all(empty(lic.get(k)) for k in ("license_number", "license_status", "issue_date", "expiration_date"))


def validate(doc: Any) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """FORMAT.md's reject rules, first applicable code wins."""
    if not isinstance(doc, dict):
        raise Rejected("invalid_json", "top level is not an object")
    meta, result = doc.get("metadata"), doc.get("search_result")
    if not isinstance(meta, dict) or not isinstance(result, dict):
        raise Rejected("invalid_shape", "metadata or search_result is not an object")
    licenses = result.get("licenses", [])
    if licenses is None:
        licenses = []
    if not isinstance(licenses, list) or not all(isinstance(lic, dict) for lic in licenses):
        raise Rejected("invalid_shape", "licenses is not a list of objects")
    return meta, result, licenses


def record_rows(doc: dict[str, Any], dataset_id: int, image_hash: str | None, tz: ZoneInfo) -> list[tuple[Any, ...]]:
    """The search_results rows of one (valid, NUL-free) document, value by value."""
    meta, result, licenses = validate(doc)
    name = _required(meta, "pharmacy_name")
    state = _required(meta, "state").upper()
    ts = _timestamp(meta.get("search_timestamp"), tz)
    status = as_text(result.get("result_status")) if not isinstance(result.get("result_status"), dict | list) else None
    common = (dataset_id, name, state, ts)
    tail = (Jsonb(meta), Jsonb(doc), image_hash)
    real = [lic for lic in licenses if not _is_placeholder(lic)]
    if not real:
        return [(*common, None, None, None, None, None, None, None, None, None, None,
                 clean_text(status or "not_found"), *tail)]
    rows = []
    for lic in real:
        addr = lic.get("address")
        if not isinstance(addr, dict):
            addr = {}
        rows.append((*common, clean_text(lic.get("license_number")), clean_text(lic.get("license_status")),
                     clean_text(lic.get("pharmacy_name")), clean_text(lic.get("license_type")),
                     clean_text(addr.get("street")), clean_text(addr.get("city")), clean_text(addr.get("state")),
                     clean_text(addr.get("zip_code")), clean_date(lic.get("issue_date")),
                     clean_date(lic.get("expiration_date")), clean_text(status or "found"), *tail))
    return rows


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
            _required(meta, "pharmacy_name")
            if _required(meta, "state").upper() not in STATES:
                raise Rejected("invalid_state", "not a US state")
            _timestamp(meta.get("search_timestamp"), tz)
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
