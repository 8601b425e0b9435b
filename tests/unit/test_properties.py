"""Property-based tests of the parse and clean stages on hostile input, no database.

A scrape folder is untrusted: whatever bytes a `*_parse.json` file holds, `parse.parse_chunk` must account
for it (loaded, or rejected with a known reason code), never raise, and never lose the other files of its
chunk; `frame.clean` must then turn whatever was loaded into values PostgreSQL can hold.
"""

from __future__ import annotations

import copy
import json
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from loader.scan import frame, parse
from tests.scrape import document, license_

REASONS = frozenset({"invalid_json", "invalid_shape", "missing_field", "invalid_state", "invalid_timestamp",
                     "too_large", "unreadable"})
TEXT_COLUMNS = ("search_name", "search_state", *frame.TEXT_COLUMNS, "licenses_json")
ASCII_SPACE = " \t\n\r\x0b\x0c"
BOM = b"\xef\xbb\xbf"
ZONES = ("UTC", "America/New_York", "Asia/Kathmandu", "Pacific/Kiritimati", "America/St_Johns")

GOOD_BEFORE = orjson.dumps(document(name="Good Before", state="FL",
                                    licenses=[license_(license_number="BEFORE-1", issue_date="01/15/2020")]))
GOOD_AFTER = orjson.dumps(document(name="Good After", state="TX", ts="2025-08-04T09:00:00-05:00",
                                   licenses=[license_(license_number="AFTER-1"), license_(license_number="AFTER-2")]))
HOSTILE_REL = "2025-08-03/PA/Hostile_parse.json"

# -- strategies -------------------------------------------------------------------------

# Characters a scraper (or an attacker) can put into a JSON string: NUL and other controls, lone
# surrogates (written as \ud800 escapes by json.dumps(ensure_ascii=True), or as invalid UTF-8 bytes),
# byte order marks, every kind of whitespace, quotes and backslashes, COPY's end-of-data marker.
SPECIAL = ["\x00", "\x01", "\x1b", "\x1f", "\x7f", "\x85", "\ud800", "\udfff", "\udbff", "\ufeff", "\ufffe", " ", "\t",
           "\n", "\r", "\x0b", "\x0c", "\xa0", "\u2028", "\u3000", "\\", '"', "'", ";", "\\.", "$$", ",", "\U0001f48a"]
NEAR_VALID = ["PA", "pa", " pa ", "P\x00A", "\x00PA", "XX", "Belmar", "2025-08-03T14:03:15.401850",
              "2025-08-03T14:03:15Z", "2025-08-03T14:03:15-05:00", "0001-01-01T00:00:00+23:59",
              "9999-12-31T23:59:59.999999-23:59", "2025-02-29T00:00:00", "8/31/2027", "02/30/2020", "January 15, 2020",
              "15-Jan-2020", "Not On File", "N/A.", "0000-00-00", "99/99/9999", "12/31/9999", "1/1/0001", "3000000000",
              "20200115", "2020", "Jan 2020", "0000-06-15", "01/15/0000", "-0001-01-01", "10000-01-01",
              "data/2025-08-03/PA/Belmar_01.png", "../../etc/passwd", "found", "no_results_found", ""]
AFFIXES = [*SPECIAL, ""]

texts = st.one_of(
    st.text(max_size=30),
    st.lists(st.one_of(st.sampled_from(SPECIAL), st.characters()), max_size=12).map("".join),
    st.tuples(st.sampled_from(AFFIXES), st.sampled_from(NEAR_VALID), st.sampled_from(AFFIXES)).map("".join),
    st.sampled_from(NEAR_VALID),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**63 - 2, max_value=2**64 + 2),
    st.integers(min_value=-(10**80), max_value=10**80),
    st.floats(),  # NaN and infinities are written as NaN / Infinity, which JSON does not have
    texts,
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(texts, children, max_size=4)),
    max_leaves=12,
)

# Every place of a valid document a value can be spliced into (and a few that do not exist yet).
FIELD_PATHS: list[tuple[Any, ...]] = [
    (),
    ("metadata",),
    ("search_result",),
    ("debug_info",),
    ("errors",),
    ("brand_new_key",),
    *(("metadata", k) for k in ("pharmacy_name", "state", "search_timestamp", "scraper_version",
                                "json_generated_timestamp", "source_html_file", "source_image_file",
                                "search_result_type", "output_directory", "unexpected")),
    *(("search_result", k) for k in ("licenses", "result_status", "search_query")),
    ("search_result", "licenses", 0),
    ("search_result", "licenses", 1),
    *(("search_result", "licenses", 0, k) for k in (*parse.LICENSE_FIELDS, "address", "contact", "additional_info")),
    *(("search_result", "licenses", 1, k) for k in ("license_number", "license_status", "issue_date")),
    *(("search_result", "licenses", 0, "address", k) for k in (*parse.ADDRESS_FIELDS, "suite")),
]
DELETE = object()


def _has(container: Any, key: Any) -> bool:
    if isinstance(container, dict):
        return key in container
    return isinstance(container, list) and isinstance(key, int) and key < len(container)


def _splice(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    """doc with the value at path replaced (or deleted); a path through a non-container is left alone."""
    if not path:
        return doc if value is DELETE else value
    target = doc
    for key in path[:-1]:
        if not _has(target, key):
            return doc
        target = target[key]
    last = path[-1]
    if isinstance(target, dict):
        if value is DELETE:
            target.pop(last, None)
        else:
            target[last] = value
    elif isinstance(target, list) and isinstance(last, int) and last < len(target):
        if value is DELETE:
            del target[last]
        else:
            target[last] = value
    return doc


def _base_document() -> dict[str, Any]:
    return document(name="Hostile", licenses=[license_(license_number="H-1"), license_(license_number="H-2")],
                    source_image_file="data/2025-08-03/PA/Hostile.png")


@st.composite
def spliced_documents(draw: st.DrawFn) -> Any:
    doc = _base_document()
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        path = draw(st.sampled_from(FIELD_PATHS))
        value = draw(st.one_of(json_values, texts, st.just(DELETE)))
        doc = _splice(doc, path, value if value is DELETE else copy.deepcopy(value))
    return doc


def _encode(doc: Any, how: str) -> bytes:
    """JSON text of doc the ways a file may hold it; lone surrogates as escapes or as invalid UTF-8."""
    if how == "ascii":
        return json.dumps(doc, ensure_ascii=True).encode()
    if how == "bom":
        return BOM + json.dumps(doc, ensure_ascii=True).encode()
    if how == "pretty":
        return ("\r\n \t" + json.dumps(doc, ensure_ascii=False, indent=2) + "\n\n").encode("utf-8", "surrogatepass")
    return json.dumps(doc, ensure_ascii=False).encode("utf-8", "surrogatepass")


ENCODINGS = st.sampled_from(["ascii", "utf8", "bom", "pretty"])


@st.composite
def mangled_bytes(draw: st.DrawFn) -> bytes:
    """A valid file truncated, with bytes inserted or overwritten, or repeated."""
    data = bytearray(orjson.dumps(_base_document()))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        at = draw(st.integers(min_value=0, max_value=len(data)))
        op = draw(st.sampled_from(["truncate", "insert", "overwrite", "repeat"]))
        junk = draw(st.binary(min_size=1, max_size=8))
        if op == "truncate":
            del data[at:]
        elif op == "insert":
            data[at:at] = junk
        elif op == "overwrite":
            data[at:at + len(junk)] = junk
        else:
            data += bytes(data)
    return bytes(data)


hostile_files = st.one_of(
    st.binary(max_size=300),
    st.tuples(st.sampled_from([b"", BOM, b" ", BOM + BOM]), st.binary(max_size=64)).map(b"".join),
    mangled_bytes(),
    st.builds(_encode, json_values, ENCODINGS),
    st.builds(_encode, st.fixed_dictionaries({"metadata": json_values, "search_result": json_values}), ENCODINGS),
    st.builds(_encode, spliced_documents(), ENCODINGS),
)

# -- the stage under test -----------------------------------------------------------------

@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("properties")


def _parse(folder: Path, hostile: bytes, max_json_bytes: int, tz: str, kind: str = "file") -> parse.ParsedChunk:
    """Parse one chunk: a good file, the hostile one, a good file. `kind` "directory" or "missing" puts a
    folder, or nothing, where the hostile file should be (a file removed after the plan)."""
    root = Path(tempfile.mkdtemp(dir=folder))
    files = {"2025-08-03/FL/GoodBefore_parse.json": GOOD_BEFORE, HOSTILE_REL: hostile,
             "2025-08-04/TX/GoodAfter_parse.json": GOOD_AFTER}
    paths = []
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if rel != HOSTILE_REL or kind == "file":
            path.write_bytes(data)
        elif kind == "directory":
            path.mkdir()
        paths.append(str(path))
    return parse.parse_chunk(parse.ParseTask(file_ids=[0, 1, 2], paths=paths, rels=list(files),
                                             source_timezone=tz, max_json_bytes=max_json_bytes))


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value


def _check_parsed(chunk: parse.ParsedChunk, hostile: bytes, max_json_bytes: int, kind: str = "file") -> bool:
    """The hostile file (file_id 1) is loaded or rejected, never both, and the good files around it load.

    Returns whether it loaded."""
    loaded = chunk.files["file_id"].to_list()
    assert 0 in loaded and 2 in loaded, f"a good file was lost: {chunk.rejects}"
    rejects = [(rel, code) for rel, code, _ in chunk.rejects]
    event("hostile file: " + (rejects[0][1] if rejects else "loaded"))
    if 1 in loaded:
        assert rejects == [], "the hostile file is both loaded and rejected"
        assert loaded == [0, 1, 2]
    else:
        assert loaded == [0, 2]
        assert len(rejects) == 1 and rejects[0][0] == HOSTILE_REL, rejects
        assert rejects[0][1] in REASONS, rejects
        assert chunk.rejects[0][2].strip(), "a reject needs a human-readable detail"
        if kind != "file":
            assert rejects[0][1] == "unreadable", rejects
        elif len(hostile) > max_json_bytes:
            assert rejects[0][1] == "too_large", rejects
    rows = chunk.rows
    assert set(rows["file_id"].unique().to_list()) == set(loaded), "every loaded file has rows, no other file has"
    good = rows.filter(pl.col("file_id") != 1).select("file_id", "search_name", "search_state", "license_number")
    assert good.rows() == [(0, "Good Before", "FL", "BEFORE-1"), (2, "Good After", "TX", "AFTER-1"),
                           (2, "Good After", "TX", "AFTER-2")]
    whole = frame.with_raw(rows.rename({"file_id": "file_order"}), chunk.files)
    for row in whole.filter(pl.col("file_order") == 1).iter_rows(named=True):
        assert row["search_state"] in parse.STATES
        assert row["search_name"] and row["search_name"] == row["search_name"].strip() and "\x00" not in row[
            "search_name"]
        assert isinstance(row["search_ts_us"], int)
        text = row["raw"]
        assert "\x00" not in text and "\\u0000" not in text
        got = orjson.loads(text)
        assert isinstance(got["metadata"], dict)
        want = _without_nul(orjson.loads(hostile.removeprefix(BOM)))
        listed = want["search_result"].get("licenses")
        if got["search_result"].get("licenses") != listed:  # a found row: its own license, no other
            assert len(got["search_result"]["licenses"]) == 1 and got["search_result"]["licenses"][0] in listed
            got["search_result"]["licenses"] = listed
        assert got == want, "raw is the file, less NULs, with licenses reduced to the row's own"
    return 1 in loaded


def _check_clean(chunk: parse.ParsedChunk) -> None:
    rows, warnings = frame.clean(chunk.rows)
    assert rows.height == chunk.rows.height
    assert rows.schema["search_ts"] == pl.Datetime("us", "UTC")
    for col in frame.DATE_COLUMNS:
        assert rows.schema[col] == pl.Date, col
        years = rows[col].dt.year()
        unreal = rows[col].filter((years < 1) | (years > 9999)).cast(pl.String).to_list()
        assert not unreal, f"{col}: {unreal} are no calendar dates (there is no year 0); they must be NULL"
        assert all(v is None or isinstance(v, date) for v in rows[col].to_list()), col
    for col in TEXT_COLUMNS:
        for value in rows[col].to_list():
            if value is None:
                continue
            assert isinstance(value, str) and "\x00" not in value, (col, value)
            if col in frame.TEXT_COLUMNS:
                assert value and value[0] not in ASCII_SPACE and value[-1] not in ASCII_SPACE, (col, value)
    assert set(warnings["file_id"].to_list()) <= set(rows["file_id"].to_list())
    good = rows.filter(pl.col("file_id") == 0).row(0, named=True)
    assert (good["issue_date"], good["expiration_date"]) == (date(2020, 1, 15), date(2027, 8, 31))
    deduped = frame.newest_per_key(rows)
    assert deduped.height <= rows.height


PROPERTY = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(hostile=hostile_files, tz=st.sampled_from(ZONES), kind=st.sampled_from(["file"] * 8 + ["directory", "missing"]))
def test_any_file_is_loaded_or_rejected_and_never_costs_its_neighbours(folder: Path, hostile: bytes, tz: str,
                                                                       kind: str) -> None:
    chunk = _parse(folder, hostile, 10 * 1024 * 1024, tz, kind)
    _check_parsed(chunk, hostile, 10 * 1024 * 1024, kind)
    _check_clean(chunk)


@PROPERTY
@given(doc=spliced_documents(), how=ENCODINGS, tz=st.sampled_from(ZONES))
def test_any_value_in_any_field_is_loaded_or_rejected(folder: Path, doc: Any, how: str, tz: str) -> None:
    hostile = _encode(doc, how)
    chunk = _parse(folder, hostile, 10 * 1024 * 1024, tz)
    _check_parsed(chunk, hostile, 10 * 1024 * 1024)
    _check_clean(chunk)


@settings(max_examples=60, deadline=None)
@given(hostile=st.one_of(hostile_files, st.builds(_encode, spliced_documents(), ENCODINGS)),
       slack=st.integers(min_value=0, max_value=400))
def test_size_limit_rejects_only_the_file_over_it(folder: Path, hostile: bytes, slack: int) -> None:
    limit = max(len(GOOD_BEFORE), len(GOOD_AFTER)) + slack
    chunk = _parse(folder, hostile, limit, "UTC")
    _check_parsed(chunk, hostile, limit)
    _check_clean(chunk)


@settings(max_examples=150, deadline=None)
@given(text=texts, field=st.sampled_from([*parse.LICENSE_FIELDS, "street", "city", "state", "zip_code",
                                         "result_status", "pharmacy_name@metadata"]))
@example(text="01/15/0000", field="issue_date")  # there is no year 0
@example(text="-0001-01-01", field="expiration_date")
@example(text="\ud800\udfff", field="license_number")  # a surrogate pair: one valid character
@example(text="\udfff\ud800", field="license_number")  # two lone halves
def test_any_string_in_a_text_field_loads_the_file(folder: Path, text: str, field: str) -> None:
    """A string (without lone surrogates, which JSON text cannot hold as UTF-8) in a license, address or
    status field never rejects the file: only metadata decides that."""
    doc = _base_document()
    lic = doc["search_result"]["licenses"][0]
    if field in parse.LICENSE_FIELDS:
        lic[field] = text
    elif field == "result_status":
        doc["search_result"]["result_status"] = text
    elif field == "pharmacy_name@metadata":
        doc["metadata"]["pharmacy_name"] = "Hostile " + text
    else:
        lic["address"][field] = text
    hostile = json.dumps(doc, ensure_ascii=True).encode()
    chunk = _parse(folder, hostile, 10 * 1024 * 1024, "UTC")
    # JSON's \uD800\uDFFF escapes pair up into one character: only an unpaired half is invalid.
    paired = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
    lone_surrogate = any(0xD800 <= ord(c) <= 0xDFFF for c in paired)
    assert _check_parsed(chunk, hostile, 10 * 1024 * 1024) is not lone_surrogate
    _check_clean(chunk)
