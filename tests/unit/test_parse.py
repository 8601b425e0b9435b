"""parse.parse_chunk on files in tmp_path, no database: reject codes, shapes, NULs, BOM, timestamps."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest

from loader.scan import frame, parse
from tests.scrape import PLACEHOLDER, document, license_, with_metadata, with_result, without

BOM = b"\xef\xbb\xbf"


def _chunk(tmp_path: Path, files: dict[str, bytes], tz: str = "UTC") -> parse.ParsedChunk:
    paths = []
    for rel, data in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        paths.append(str(path))
    task = parse.ParseTask(file_ids=list(range(len(files))), paths=paths, rels=list(files), source_timezone=tz)
    return parse.parse_chunk(task)


def _one(tmp_path: Path, doc: Any, tz: str = "UTC") -> parse.ParsedChunk:
    data = doc if isinstance(doc, bytes) else orjson.dumps(doc)
    return _chunk(tmp_path, {"2025-08-03/PA/Belmar_01_parse.json": data}, tz)


GOOD = orjson.dumps(document())
REJECTS: list[tuple[str, Any, str]] = [
    ("empty", b"", "invalid_json"),
    ("whitespace", b"  \n", "invalid_json"),
    ("truncated", GOOD[: len(GOOD) // 2], "invalid_json"),
    ("trailing garbage", GOOD + b" trailing", "invalid_json"),
    ("two objects", GOOD + GOOD, "invalid_json"),
    ("array", b"[]", "invalid_json"),
    ("string", b'"metadata"', "invalid_json"),
    ("null", b"null", "invalid_json"),
    ("number", b"42", "invalid_json"),
    ("invalid utf-8", GOOD.replace(b"BELMAR PHARMACY", b"BELMAR \xff\xfe PHARMACY"), "invalid_json"),
    ("bom then empty", BOM, "invalid_json"),
    ("metadata absent", without(document(), "metadata"), "invalid_shape"),
    ("metadata list", {**document(), "metadata": []}, "invalid_shape"),
    ("metadata string", {**document(), "metadata": "PA"}, "invalid_shape"),
    ("metadata null", {**document(), "metadata": None}, "invalid_shape"),
    ("search_result absent", without(document(), "search_result"), "invalid_shape"),
    ("search_result list", {**document(), "search_result": []}, "invalid_shape"),
    ("licenses object", with_result(licenses={"0": license_()}), "invalid_shape"),
    ("licenses string", with_result(licenses="none"), "invalid_shape"),
    ("license string", with_result(licenses=[license_(), "NP1"]), "invalid_shape"),
    ("license null", with_result(licenses=[None]), "invalid_shape"),
    ("license list", with_result(licenses=[[]]), "invalid_shape"),
    ("name absent", without(document(), "metadata", "pharmacy_name"), "missing_field"),
    ("name null", with_metadata(pharmacy_name=None), "missing_field"),
    ("name empty", with_metadata(pharmacy_name=""), "missing_field"),
    ("name blank", with_metadata(pharmacy_name="   "), "missing_field"),
    ("state absent", without(document(), "metadata", "state"), "missing_field"),
    ("state null", with_metadata(state=None), "missing_field"),
    ("state empty", with_metadata(state=""), "missing_field"),
    ("state unknown code", with_metadata(state="XX"), "invalid_state"),
    ("state full name", with_metadata(state="Pennsylvania"), "invalid_state"),
    ("state lower unknown", with_metadata(state="zz"), "invalid_state"),
    ("ts absent", without(document(), "metadata", "search_timestamp"), "invalid_timestamp"),
    ("ts null", with_metadata(search_timestamp=None), "invalid_timestamp"),
    ("ts empty", with_metadata(search_timestamp=""), "invalid_timestamp"),
    ("ts words", with_metadata(search_timestamp="yesterday afternoon"), "invalid_timestamp"),
    ("ts us style", with_metadata(search_timestamp="08/03/2025 14:03:15"), "invalid_timestamp"),
    ("ts impossible", with_metadata(search_timestamp="2025-08-03T25:03:15"), "invalid_timestamp"),
    ("ts number", with_metadata(search_timestamp=1754229795), "invalid_timestamp"),
]


@pytest.mark.parametrize(("doc", "code"), [pytest.param(d, c, id=i) for i, d, c in REJECTS])
def test_parse_chunk_reject_code(tmp_path: Path, doc: Any, code: str) -> None:
    chunk = _one(tmp_path, doc)
    assert [(rel, reason) for rel, reason, _ in chunk.rejects] == [("2025-08-03/PA/Belmar_01_parse.json", code)]
    assert chunk.rejects[0][2], "a reject needs a human-readable detail"
    assert chunk.rows.height == 0
    assert chunk.files.height == 0


FIRST_CODE_WINS: list[tuple[str, dict[str, Any], str]] = [
    ("shape before missing", {"metadata": {"state": "PA"}, "search_result": {"licenses": "x"}}, "invalid_shape"),
    ("shape before state", {"metadata": {"pharmacy_name": "B", "state": "XX"}, "search_result": []},
     "invalid_shape"),
    ("missing before state", with_metadata(pharmacy_name=None, state="XX"), "missing_field"),
    ("missing before timestamp", with_metadata(state=None, search_timestamp="nope"), "missing_field"),
    ("state before timestamp", with_metadata(state="XX", search_timestamp=None), "invalid_state"),
]


@pytest.mark.parametrize(("doc", "code"), [pytest.param(d, c, id=i) for i, d, c in FIRST_CODE_WINS])
def test_parse_chunk_first_code_of_the_table_wins(tmp_path: Path, doc: dict[str, Any], code: str) -> None:
    assert [r[1] for r in _one(tmp_path, doc).rejects] == [code]


def test_parse_chunk_bad_file_does_not_stop_the_others(tmp_path: Path) -> None:
    chunk = _chunk(tmp_path, {
        "a_parse.json": orjson.dumps(document(name="A")),
        "b_parse.json": b"{",
        "c_parse.json": orjson.dumps(document(name="C", licenses=[license_(), 5])),  # type: ignore[list-item]
        "d_parse.json": orjson.dumps(document(name="D")),
    })
    assert [(r[0], r[1]) for r in chunk.rejects] == [("b_parse.json", "invalid_json"),
                                                     ("c_parse.json", "invalid_shape")]
    assert chunk.rows["search_name"].to_list() == ["A", "D"]
    assert chunk.files["file_id"].to_list() == [0, 3]


@pytest.mark.parametrize(("licenses", "status", "expected_status"), [
    ([], "no_results_found", "no_results_found"),
    ([], None, "not_found"),
    ([PLACEHOLDER], "no_results_found", "no_results_found"),
    ([PLACEHOLDER], None, "not_found"),
    ([PLACEHOLDER, PLACEHOLDER], None, "not_found"),
])
def test_parse_chunk_no_results_is_one_row_without_license(tmp_path: Path, licenses: list[Any], status: str | None,
                                                           expected_status: str) -> None:
    chunk = _one(tmp_path, document(licenses=licenses, result_status=status))
    assert chunk.rows.height == 1
    row = chunk.rows.row(0, named=True)
    assert row["result_status"] == expected_status
    for col in ("license_number", "license_status", "license_name", "license_type", "address", "city", "state",
                "zip", "issue_date", "expiration_date"):
        assert row[col] is None, col


def test_parse_chunk_found_license_without_status_is_found(tmp_path: Path) -> None:
    chunk = _one(tmp_path, document(licenses=[license_(), PLACEHOLDER], result_status=None))
    assert chunk.rows.select("license_number", "result_status").rows() == [("NP002169", "found")]


def test_parse_chunk_columns_of_a_license(tmp_path: Path) -> None:
    chunk = _one(tmp_path, document(state="pa", licenses=[license_(license_number=12345, license_status="Clear/")]))
    row = chunk.rows.row(0, named=True)
    assert (row["search_name"], row["search_state"], row["license_number"]) == ("Belmar", "PA", "12345")
    assert (row["license_name"], row["license_status"], row["license_type"]) == (
        "BELMAR PHARMACY", "Clear/", "Nonresident Pharmacy")
    assert (row["address"], row["city"], row["state"], row["zip"]) == ("2500 LAKEPOINTE PARKWAY", "ODESSA",
                                                                      "Florida", "33556")
    assert (row["issue_date"], row["expiration_date"]) == (None, "8/31/2027")


def test_parse_chunk_strips_nul_from_columns_meta_and_raw(tmp_path: Path) -> None:
    doc = document(name="Bel\u0000mar", licenses=[license_(license_status="Act\u0000ive")], note="x\u0000y")
    doc["debug_info"] = {"parser\u0000strategy": "Re\u0000gex"}
    chunk = _one(tmp_path, doc)
    row = _whole(chunk).row(0, named=True)
    assert (row["search_name"], row["license_status"]) == ("Belmar", "Active")
    raw = orjson.loads(row["raw"])  # meta is raw's metadata object, taken by the server
    assert raw["metadata"]["pharmacy_name"] == "Belmar" and raw["metadata"]["note"] == "xy"
    assert raw["debug_info"] == {"parserstrategy": "Regex"}
    assert "\x00" not in row["raw"] and "\\u0000" not in row["raw"]


def test_parse_chunk_accepts_a_bom(tmp_path: Path) -> None:
    doc = document()
    chunk = _one(tmp_path, BOM + orjson.dumps(doc))
    assert chunk.rejects == []
    assert orjson.loads(_whole(chunk)["raw"][0]) == doc


def _whole(chunk: parse.ParsedChunk) -> pl.DataFrame:
    """The chunk's rows with meta and raw as the loader stages them."""
    return frame.with_raw(chunk.rows.rename({"file_id": "file_order"}), chunk.files)


def test_raw_holds_the_document_with_only_the_rows_own_license(tmp_path: Path) -> None:
    """FORMAT.md: each row's raw is the file with licenses reduced to its own; a file's rows together
    cost about the file's size; a no-results row keeps the document as it is."""
    lics = [license_(license_number=f"N{i}") for i in range(3)]
    doc = document(licenses=[lics[0], PLACEHOLDER, *lics[1:]])
    doc["debug_info"] = {"after": "licenses"}
    rows = _whole(_one(tmp_path, doc))
    assert rows["license_number"].to_list() == ["N0", "N1", "N2"]
    for number, text in zip(rows["license_number"], rows["raw"], strict=True):
        raw = orjson.loads(text)
        assert raw["search_result"]["licenses"] == [lics[int(number[1:])]]
        assert {**raw, "search_result": {**raw["search_result"], "licenses": doc["search_result"]["licenses"]}} == doc
    empty = document(licenses=[])
    assert orjson.loads(_whole(_one(tmp_path / "e", empty))["raw"][0]) == empty


@pytest.mark.parametrize(("ts", "tz", "expected"), [
    ("2025-08-03T14:03:15.401850", "UTC", datetime(2025, 8, 3, 14, 3, 15, 401850, tzinfo=UTC)),
    ("2025-08-03T14:03:15Z", "UTC", datetime(2025, 8, 3, 14, 3, 15, tzinfo=UTC)),
    ("2025-08-03T09:00:00-05:00", "UTC", datetime(2025, 8, 3, 14, 0, tzinfo=UTC)),
    ("2025-08-03T10:00:00", "America/New_York", datetime(2025, 8, 3, 14, 0, tzinfo=UTC)),
    ("2025-01-15T09:00:00", "America/New_York", datetime(2025, 1, 15, 14, 0, tzinfo=UTC)),
    ("2025-08-03T14:00:00+00:00", "America/New_York", datetime(2025, 8, 3, 14, 0, tzinfo=UTC)),
])
def test_parse_chunk_timestamp_is_an_instant(tmp_path: Path, ts: str, tz: str, expected: datetime) -> None:
    chunk = _one(tmp_path, document(ts=ts), tz)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert chunk.rows["search_ts_us"][0] == (expected - epoch) // _US


_US = datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(("given", "expected"), [
    ("data/2025-08-03/PA/Belmar_01.png", "data/2025-08-03/PA/Belmar_01.png"),
    (None, None),
    ("", None),
])
def test_parse_chunk_reports_the_screenshot_reference(tmp_path: Path, given: str | None, expected: str | None) -> None:
    doc = document()
    if given is not None:
        doc["metadata"]["source_image_file"] = given
    assert _one(tmp_path, doc).files["source_image"].to_list() == [expected]


@pytest.mark.parametrize("size", [0, 1, 999, 1000, 1001, 5000])
def test_read_whole_returns_at_most_one_byte_past_the_limit(tmp_path: Path, size: int) -> None:
    path = tmp_path / "f"
    data = bytes(range(256)) * (size // 256 + 1)
    path.write_bytes(data[:size])
    assert parse.read_whole(str(path), 1000) == data[:min(size, 1001)]


def test_read_whole_reads_a_file_whose_size_fstat_does_not_know(tmp_path: Path) -> None:
    # /proc files report size 0: the first read fills its one byte, and the rest is read to the end
    got = parse.read_whole("/proc/self/status", 1 << 20)
    assert got.startswith(b"Name:") and got.endswith(b"\n") and len(got) > 100
    assert parse.read_whole("/proc/self/status", 10) == got[:11]
