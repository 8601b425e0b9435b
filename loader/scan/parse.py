"""Worker function: parse a chunk of search files into columns.

Runs in a worker process (or in-process with --max-workers 1), so it takes and returns small
picklable values: a list of paths in, a polars frame and two short lists out. Everything that
decides whether a file is rejected happens here, because that needs the file's own structure; the
per-value cleaning that can be done on whole columns (dates, trims, null tokens) is left to
`frame.py`.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import polars as pl

from loader.scan import frame, images, walk

# The 50 states, DC and the inhabited territories.
STATES = frozenset(
    "AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY "
    "NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY DC PR VI GU AS MP".split()
)
LICENSE_FIELDS = ("license_number", "license_status", "pharmacy_name", "license_type",
                  "issue_date", "expiration_date")
ADDRESS_FIELDS = ("street", "city", "state", "zip_code")
PLACEHOLDER_EMPTY = ("license_number", "license_status", "issue_date", "expiration_date")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ROW_SCHEMA: dict[str, Any] = {
    "file_id": pl.Int64,
    "lic_idx": pl.Int32,
    "search_name": pl.String,
    "search_state": pl.String,
    "search_ts_us": pl.Int64,
    "license_number": pl.String,
    "license_status": pl.String,
    "license_name": pl.String,
    "license_type": pl.String,
    "address": pl.String,
    "city": pl.String,
    "state": pl.String,
    "zip": pl.String,
    "issue_date": pl.String,
    "expiration_date": pl.String,
    "result_status": pl.String,
    "licenses_json": pl.String,  # the row's own `licenses` array as JSON text ("" for a no-results row)
}
# Per file: its document serialised once around a hole where search_result.licenses goes
# (frame.with_raw fills the hole with each row's own license; a file that is one row is all head).
FILE_SCHEMA: dict[str, Any] = {"file_id": pl.Int64, "source_image": pl.String, "raw_head": pl.String,
                               "raw_tail": pl.String}
# Stands for the licenses array while a document is serialised; a per-process random name, so that
# no text of a scraped file can be taken for it.
HOLE = f"pharmload-licenses-{uuid.uuid4().hex}"
Dumps = Callable[[Any], str]


@dataclass(frozen=True)
class ParseTask:
    file_ids: list[int]
    paths: list[str]
    rels: list[str]
    source_timezone: str = "UTC"
    max_json_bytes: int = 10 * 1024 * 1024
    want_canon: bool = False
    roots: images.Roots | None = None  # where screenshots are; None: do not look for them
    hash_threads: int = 1  # threads reading and hashing screenshots (more only when run in-process)
    # Screenshots rewritten behind unchanged search files (run/evidence.py): no row of this load may
    # take their new hash, which the store does not receive.
    keep_loaded: frozenset[str] = frozenset()


@dataclass
class ParsedChunk:
    """Rows (one per license, or one per no-result search), per-file image refs, rejects, warnings."""

    rows: pl.DataFrame
    files: pl.DataFrame
    rejects: list[tuple[str, str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str, str]] = field(default_factory=list)


class Rejected(Exception):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def strip_nul(value: Any) -> Any:
    """Remove NUL characters everywhere: PostgreSQL text and JSONB cannot hold them."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {strip_nul(k): strip_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [strip_nul(v) for v in value]
    return value


def _text(value: Any) -> str | None:
    """A scalar as text (numbers too: license numbers are sometimes JSON numbers); else None."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    raise TypeError(type(value).__name__)


def _required_text(meta: dict[str, Any], key: str) -> str:
    value = meta.get(key)
    text = _text(value) if not isinstance(value, dict | list) else None
    text = text.replace("\x00", "").strip() if text is not None else ""
    if not text:
        raise Rejected("missing_field", f"metadata.{key} is absent, null or empty")
    return text


def _timestamp_us(value: Any, tz: ZoneInfo) -> int:
    if not isinstance(value, str) or not value.strip():
        raise Rejected("invalid_timestamp", "metadata.search_timestamp is absent, null or empty")
    try:
        ts = datetime.fromisoformat(value.strip())
    except ValueError:
        raise Rejected("invalid_timestamp", f"metadata.search_timestamp {value[:60]!r} is not ISO 8601") from None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=tz)
    try:
        utc = ts.astimezone(UTC)  # years 1-9999 in UTC too: PostgreSQL has no year 0 or 10000
    except OverflowError:
        raise Rejected("invalid_timestamp", f"metadata.search_timestamp {value[:60]!r} is outside years 1-9999"
                       ) from None
    delta = utc - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def read_whole(path: str, limit: int) -> bytes:
    """The file's bytes, but never more than limit + 1 of them (one more than allowed tells the
    caller the file is too large).

    One read sized by fstat. Python's buffered read(limit + 1) set aside the whole limit (10 MB) for
    every search file, ~5 µs of a worker's ~110 µs per file.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a file swapped for a FIFO since the plan: no wait
    try:
        st = os.fstat(fd)
        if (why := walk.not_regular(st.st_mode)) is not None:
            raise Rejected("unreadable", why)
        want = min(st.st_size, limit) + 1
        data = os.read(fd, want)
        if len(data) < want:  # a short read of a regular file is its end
            return data
        parts, total = [data], len(data)  # the file grew since fstat, or fstat does not know its size
        while total <= limit and (more := os.read(fd, limit + 1 - total)):
            parts.append(more)
            total += len(more)
        return b"".join(parts)
    finally:
        os.close(fd)


def _load(path: str, max_bytes: int) -> tuple[bytes, Any]:
    data = read_whole(path, max_bytes)
    if len(data) > max_bytes:
        raise Rejected("too_large", f"file is larger than the {max_bytes} byte limit")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise Rejected("invalid_json", f"not valid UTF-8 JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise Rejected("invalid_json", f"top level is a JSON {type(doc).__name__}, not an object")
    return data, doc


def _shape(doc: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    meta, result = doc.get("metadata"), doc.get("search_result")
    if not isinstance(meta, dict):
        raise Rejected("invalid_shape", "metadata is not an object")
    if not isinstance(result, dict):
        raise Rejected("invalid_shape", "search_result is not an object")
    licenses = result.get("licenses", [])
    if licenses is None:
        licenses = []
    if not isinstance(licenses, list):
        raise Rejected("invalid_shape", "search_result.licenses is not a list")
    for i, lic in enumerate(licenses):
        if not isinstance(lic, dict):
            raise Rejected("invalid_shape", f"search_result.licenses[{i}] is not an object")
    return meta, result, licenses


def _licenses_with_exact_numbers(data: bytes) -> list[dict[str, Any]]:
    """Licenses re-read keeping numbers as their text: orjson turns integers past 64 bits into floats,
    and a license number must be stored exactly as written."""
    doc = json.loads(data, parse_int=str, parse_float=str)
    return [lic for lic in _shape(strip_nul(doc))[2]]


def _is_placeholder(lic: dict[str, Any]) -> bool:
    """The "no results" placeholder: a license with no number, no status and no dates.

    FORMAT.md describes it with every field null; real scrapes sometimes fill in the searched name,
    a license type or an address state in it, which carry no license, so those are ignored.
    """
    for key in PLACEHOLDER_EMPTY:  # a real license fails at its first field, the number
        v = lic.get(key)
        if v is None or v == [] or v == {} or (isinstance(v, str) and not v.strip()):
            continue
        return False
    return True


Row = tuple[Any, ...]  # one value per ROW_SCHEMA column, in its order


def _field(src: dict[str, Any], key: str, rel: str, warnings: list[tuple[str, str, str]]) -> str | None:
    value = src.get(key)
    if value is None or type(value) is str:  # nearly always: no call to _text
        return value
    try:
        return _text(value)
    except TypeError as exc:
        warnings.append((rel, "non_scalar_field", f"{key} is a JSON {exc}, stored as NULL"))
        return None


def _orjson_text(value: Any) -> str:
    return orjson.dumps(value).decode()


def _exact_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _around_licenses(doc: dict[str, Any], result: dict[str, Any], dumps: Dumps) -> tuple[str, str]:
    """The document as JSON text up to and after its licenses array, serialised once: each row's
    raw is head + [its license] + tail, so N licenses never cost N copies of the whole file."""
    text = dumps({**doc, "search_result": {**result, "licenses": HOLE}})
    at = text.index(f'"{HOLE}"')
    return text[:at], text[at + len(HOLE) + 2:]


def _add_file(out: list[Row], file_id: int, rel: str, data: bytes, doc: dict[str, Any], tz: ZoneInfo,
              warnings: list[tuple[str, str, str]]) -> tuple[Any, str, str]:
    """Append the file's rows; returns (source_image_file, raw head, raw tail)."""
    meta, result, licenses = _shape(doc)
    if b"\\u0000" in data:
        doc = strip_nul(doc)
        meta, result, licenses = _shape(doc)
    name = _required_text(meta, "pharmacy_name")
    state = _required_text(meta, "state").upper()
    if state not in STATES:
        raise Rejected("invalid_state", f"metadata.state {state[:20]!r} is not a US state or territory code")
    ts = _timestamp_us(meta.get("search_timestamp"), tz)
    status = (_field(result, "result_status", rel, warnings) or "").replace("\x00", "").strip() or None
    # raw is written from the parsed document, not copied from the file: that guarantees jsonb can
    # hold it (a number like 1e-16384 is valid JSON but not a numeric).
    dumps: Dumps = _orjson_text
    exact = licenses
    if any(isinstance(lic.get("license_number"), float) for lic in licenses):
        licenses = _licenses_with_exact_numbers(data)
        doc = strip_nul(json.loads(data))  # integers past 64 bits, exactly
        meta, result, exact = _shape(doc)
        dumps = _exact_text
    real = [i for i, lic in enumerate(licenses) if not _is_placeholder(lic)]
    if not real:  # a "no results" row keeps the document as it is
        out.append((file_id, 0, name, state, ts, *(None,) * 10, status or "not_found", ""))
        return meta.get("source_image_file"), dumps(doc), ""
    # The common search of one license: its raw is the document as it is, serialised once.
    head, tail = (dumps(doc), "") if len(licenses) == 1 else _around_licenses(doc, result, dumps)
    for i, at in enumerate(real):
        lic = licenses[at]
        addr = lic.get("address")
        if not isinstance(addr, dict):
            addr = {}
        out.append((
            file_id, i, name, state, ts,
            _field(lic, "license_number", rel, warnings), _field(lic, "license_status", rel, warnings),
            _field(lic, "pharmacy_name", rel, warnings), _field(lic, "license_type", rel, warnings),
            _field(addr, "street", rel, warnings), _field(addr, "city", rel, warnings),
            _field(addr, "state", rel, warnings), _field(addr, "zip_code", rel, warnings),
            _field(lic, "issue_date", rel, warnings), _field(lic, "expiration_date", rel, warnings),
            status or "found", dumps([exact[at]]) if tail else "",
        ))
    return meta.get("source_image_file"), head, tail


def parse_chunk(task: ParseTask) -> ParsedChunk:
    """Parse every file of the task; a bad file becomes a reject and never stops the others."""
    tz = ZoneInfo(task.source_timezone)
    out: list[Row] = []
    file_ids: list[int] = []
    sources: list[str | None] = []
    docs: list[tuple[str, str]] = []
    rejects: list[tuple[str, str, str]] = []
    warnings: list[tuple[str, str, str]] = []
    for file_id, path, rel in zip(task.file_ids, task.paths, task.rels, strict=True):
        mark = len(out)
        try:
            data, doc = _load(path, task.max_json_bytes)
            source, *doc_text = _add_file(out, file_id, rel, data, doc, tz, warnings)
        except Rejected as exc:
            del out[mark:]
            rejects.append((rel, exc.code, exc.detail))
            continue
        except OSError as exc:
            rejects.append((rel, "unreadable", f"cannot read the file: {exc.strerror or exc}"))
            continue
        file_ids.append(file_id)
        source = source.replace("\x00", "").strip() if isinstance(source, str) else None
        sources.append(source or None)
        docs.append((doc_text[0], doc_text[1]))
    columns = [list(col) for col in zip(*out, strict=True)] if out else [[] for _ in ROW_SCHEMA]
    rows = pl.DataFrame(dict(zip(ROW_SCHEMA, columns, strict=True)), schema=ROW_SCHEMA)
    heads, tails = ([list(col) for col in zip(*docs, strict=True)] if docs else [[], []])
    files = pl.DataFrame({"file_id": file_ids, "source_image": sources, "raw_head": heads, "raw_tail": tails},
                         schema=FILE_SCHEMA)
    return ParsedChunk(rows=rows, files=files, rejects=rejects, warnings=warnings)


def parse_and_prepare(task: ParseTask) -> frame.Prepared:
    """The worker's whole job for a chunk: parse; find and hash each screenshot; clean, dedup and
    serialise the rows for COPY, each with its screenshot's hash."""
    chunk = parse_chunk(task)
    rels = dict(zip(task.file_ids, task.rels, strict=True))
    shots: pl.DataFrame | None = None
    missing: list[tuple[str, str, str]] = []
    if task.roots is not None:
        ids = chunk.files["file_id"].to_list()
        shots, missing = images.describe_files(ids, chunk.files["source_image"].to_list(),
                                               [rels[i] for i in ids], task.roots, task.hash_threads)
    hashed = shots
    if shots is not None and task.keep_loaded:
        hashed = shots.filter(~pl.col("image_rel").is_in(list(task.keep_loaded)))
    prepared = frame.prepare(chunk.rows, chunk.files, rels, task.want_canon, hashed)
    prepared.images = shots
    prepared.rejects = chunk.rejects
    prepared.warnings = chunk.warnings + prepared.warnings + missing
    return prepared
