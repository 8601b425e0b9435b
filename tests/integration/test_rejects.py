"""Rejected files: every reason code, the first code wins, nothing loaded, nothing stopped, all accounted for."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from loader.report import Report
from loader.run import pipeline
from loader.settings import Settings
from tests.conftest import query
from tests.scrape import Scrape, document, license_, with_metadata, with_result, without

GOOD = orjson.dumps(document(name="Good"))


@pytest.fixture
def rsettings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.replace(rejects=tmp_path / "out" / "rejects.jsonl")


def _rejects_file(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def _run_cases(settings: Settings, scrape: Scrape, dsn: str, cases: dict[str, Any]) -> Report:
    """Load one good search plus one file per case (named after the case); return the report."""
    scrape.search("2025-08-03/PA/Good_01", document(name="Good", licenses=[license_(license_number="GOOD1")]))
    for case, body in cases.items():
        data = body if isinstance(body, bytes) else orjson.dumps(body)
        scrape.png(f"2025-08-03/PA/{case}.png")
        scrape.raw(f"2025-08-03/PA/{case}_parse.json", data)
    rep = pipeline.run(settings)
    assert (rep.files_found, rep.files_loaded, rep.files_rejected) == (len(cases) + 1, 1, len(cases))
    assert rep.files_found == rep.files_loaded + rep.files_rejected + rep.files_skipped
    # The good file loaded; no rejected file left a row or a screenshot.
    assert query(dsn, "SELECT search_name, license_number FROM search_results") == [("Good", "GOOD1")]
    assert query(dsn, "SELECT count(*) FROM image_assets") == [(1,)]
    return rep


def _codes(rep: Report, settings: Settings) -> dict[str, str]:
    from_report = {Path(f).name.removesuffix("_parse.json"): code for f, code, _ in rep.rejects}
    assert settings.rejects is not None
    lines = _rejects_file(settings.rejects)
    assert {Path(line["file"]).name.removesuffix("_parse.json"): line["reason"] for line in lines} == from_report
    assert len(lines) == len(rep.rejects)
    return from_report


def test_invalid_json(rsettings: Settings, scrape: Scrape, dsn: str) -> None:
    cases: dict[str, Any] = {
        "empty": b"",
        "whitespace": b" \n\t",
        "truncated": GOOD[: len(GOOD) - 7],
        "trailing_garbage": GOOD + b"\n}garbage",
        "two_objects": GOOD + b"\n" + GOOD,
        "array": orjson.dumps([document()]),
        "string": b'"{}"',
        "null": b"null",
        "number": b"3",
        "invalid_utf8": GOOD.replace(b"Good", b"G\xc3\x28od"),
        "latin1": GOOD.replace(b"Good", "Café".encode("latin-1")),
        "bom_only": b"\xef\xbb\xbf",
    }
    rep = _run_cases(rsettings, scrape, dsn, cases)
    assert _codes(rep, rsettings) == dict.fromkeys(cases, "invalid_json")


def test_invalid_shape(rsettings: Settings, scrape: Scrape, dsn: str) -> None:
    cases: dict[str, Any] = {
        "no_metadata": without(document(), "metadata"),
        "metadata_list": {**document(), "metadata": [document()["metadata"]]},
        "metadata_string": {**document(), "metadata": "{}"},
        "no_search_result": without(document(), "search_result"),
        "search_result_null": {**document(), "search_result": None},
        "search_result_list": {**document(), "search_result": [license_()]},
        "licenses_object": with_result(licenses=license_()),
        "licenses_string": with_result(licenses="[]"),
        "license_string": with_result(licenses=[license_(), "NP1"]),
        "license_number": with_result(licenses=[1]),
        "license_list": with_result(licenses=[[license_()]]),
    }
    rep = _run_cases(rsettings, scrape, dsn, cases)
    assert _codes(rep, rsettings) == dict.fromkeys(cases, "invalid_shape")


def test_missing_field(rsettings: Settings, scrape: Scrape, dsn: str) -> None:
    cases: dict[str, Any] = {
        "name_absent": without(document(), "metadata", "pharmacy_name"),
        "name_null": with_metadata(pharmacy_name=None),
        "name_empty": with_metadata(pharmacy_name=""),
        "name_blank": with_metadata(pharmacy_name=" \t "),
        "name_nul": with_metadata(pharmacy_name="\u0000"),
        "state_absent": without(document(), "metadata", "state"),
        "state_null": with_metadata(state=None),
        "state_empty": with_metadata(state=""),
    }
    rep = _run_cases(rsettings, scrape, dsn, cases)
    assert _codes(rep, rsettings) == dict.fromkeys(cases, "missing_field")


def test_invalid_state(rsettings: Settings, scrape: Scrape, dsn: str) -> None:
    cases: dict[str, Any] = {
        "unknown": with_metadata(state="XX"),
        "lower_unknown": with_metadata(state="zz"),
        "full_name": with_metadata(state="Pennsylvania"),
        "province": with_metadata(state="ON"),
        "three_letters": with_metadata(state="PAX"),
        "dotted": with_metadata(state="P.A."),
    }
    rep = _run_cases(rsettings, scrape, dsn, cases)
    assert _codes(rep, rsettings) == dict.fromkeys(cases, "invalid_state")


def test_every_state_and_territory_code_is_accepted(settings: Settings, scrape: Scrape, dsn: str) -> None:
    codes = ("AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY "
             "NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY DC PR VI GU AS MP").split()
    for code in codes:
        scrape.json(f"2025-08-03/{code}/Belmar_01_parse.json", document(state=code.lower()))
    rep = pipeline.run(settings)
    assert (rep.files_loaded, rep.files_rejected) == (len(codes), 0)
    assert sorted(r[0] for r in query(dsn, "SELECT search_state FROM search_results")) == sorted(codes)


def test_invalid_timestamp(rsettings: Settings, scrape: Scrape, dsn: str) -> None:
    cases: dict[str, Any] = {
        "absent": without(document(), "metadata", "search_timestamp"),
        "null": with_metadata(search_timestamp=None),
        "empty": with_metadata(search_timestamp=""),
        "words": with_metadata(search_timestamp="Sunday afternoon"),
        "us_style": with_metadata(search_timestamp="08/03/2025 14:03:15"),
        "impossible": with_metadata(search_timestamp="2025-02-30T10:00:00"),
        "number": with_metadata(search_timestamp=1754229795),
        "object": with_metadata(search_timestamp={"iso": "2025-08-03T14:03:15"}),
    }
    rep = _run_cases(rsettings, scrape, dsn, cases)
    assert _codes(rep, rsettings) == dict.fromkeys(cases, "invalid_timestamp")


def test_first_code_of_the_table_wins(rsettings: Settings, scrape: Scrape, dsn: str) -> None:
    cases: dict[str, Any] = {
        "shape_over_missing": {"metadata": {"state": "XX"}, "search_result": {"licenses": {}}},
        "shape_over_all": {"metadata": {}, "search_result": "none"},
        "missing_over_state": with_metadata(pharmacy_name="", state="XX", search_timestamp=None),
        "missing_over_timestamp": with_metadata(state=None, search_timestamp="never"),
        "state_over_timestamp": with_metadata(state="Florida", search_timestamp="never"),
    }
    rep = _run_cases(rsettings, scrape, dsn, cases)
    assert _codes(rep, rsettings) == {
        "shape_over_missing": "invalid_shape", "shape_over_all": "invalid_shape",
        "missing_over_state": "missing_field", "missing_over_timestamp": "missing_field",
        "state_over_timestamp": "invalid_state"}


def test_rejected_file_loads_nothing_and_changes_no_stored_row(rsettings: Settings, tmp_path: Path,
                                                               dsn: str) -> None:
    first, second = Scrape(tmp_path / "one"), Scrape(tmp_path / "two")
    first.search("2025-08-03/PA/Belmar_01", document())
    pipeline.run(rsettings.replace(states_dir=first.root))
    before = query(dsn, "SELECT * FROM search_results")
    # A newer search of the same key with a valid license but one bad entry: the whole file is out.
    second.search("2025-08-04/PA/Belmar_01", document(ts="2025-08-04T10:00:00", licenses=[
        license_(license_status="Changed"), license_(license_number="NEW1"), "garbage"]))  # type: ignore[list-item]
    second.search("2025-08-04/FL/Belmar_01", document(state="FL"))
    rep = pipeline.run(rsettings.replace(states_dir=second.root))
    assert (rep.files_loaded, rep.files_rejected, rep.rows_inserted, rep.rows_updated) == (1, 1, 1, 0)
    assert query(dsn, "SELECT * FROM search_results WHERE search_state = 'PA'") == before
    assert rep.rejects[0][:2] == ("2025-08-04/PA/Belmar_01_parse.json", "invalid_shape")
    assert query(dsn, "SELECT count(*) FROM image_assets") == [(2,)]


def test_rejects_file_is_json_lines_relative_to_the_states_dir(rsettings: Settings, scrape: Scrape) -> None:
    names = [f"2025-08-0{d}/{s}/Bad{i}_parse.json" for i, (d, s) in enumerate(
        (d, s) for d in (3, 4, 5) for s in ("PA", "FL", "NY", "TX"))]
    for name in names:
        scrape.raw(name, b"{")
    scrape.raw("Top_parse.json", b"[1]")
    scrape.search("2025-08-03/PA/Good_01", document(name="Good"))
    rep = pipeline.run(rsettings)
    assert rsettings.rejects is not None
    lines = _rejects_file(rsettings.rejects)
    assert len(lines) == len(names) + 1 == rep.files_rejected
    assert sorted(line["file"] for line in lines) == sorted([*names, "Top_parse.json"])
    for line in lines:
        assert set(line) == {"file", "reason", "detail"}
        assert line["reason"] == "invalid_json"
        assert isinstance(line["detail"], str) and line["detail"].strip()
    assert rep.rejects_by_reason == {"invalid_json": len(names) + 1}


def test_rejects_file_is_rewritten_by_the_next_run(rsettings: Settings, scrape: Scrape) -> None:
    bad = scrape.raw("2025-08-03/PA/Bad_parse.json", b"")
    scrape.search("2025-08-03/PA/Good_01", document(name="Good"))
    assert pipeline.run(rsettings).files_rejected == 1
    assert rsettings.rejects is not None
    assert [line["file"] for line in _rejects_file(rsettings.rejects)] == ["2025-08-03/PA/Bad_parse.json"]
    bad.write_bytes(orjson.dumps(document(name="Fixed")))
    rep = pipeline.run(rsettings)
    assert (rep.files_rejected, rep.files_loaded) == (0, 1)
    assert _rejects_file(rsettings.rejects) == []


def test_every_file_is_accounted_for(rsettings: Settings, scrape: Scrape, tmp_path: Path, dsn: str) -> None:
    outside = tmp_path / "elsewhere" / "Evil_parse.json"
    outside.parent.mkdir()
    outside.write_bytes(orjson.dumps(document(name="Evil")))
    (scrape.root / "2025-08-03" / "PA").mkdir(parents=True)
    (scrape.root / "2025-08-03/PA/Evil_parse.json").symlink_to(outside)
    scrape.search("2025-08-03/PA/Belmar_01", document())
    scrape.search("2025-08-03/FL/Belmar_01", document(state="FL"))
    scrape.raw("2025-08-03/NY/Bad_parse.json", b"{}")
    scrape.raw("2025-08-03/TX/Bad_parse.json", orjson.dumps(with_metadata(state="TXX")))

    rep = pipeline.run(rsettings)
    assert rep.files_found == 5
    assert (rep.files_loaded, rep.files_rejected, rep.files_skipped) == (2, 3, 0)
    assert query(dsn, "SELECT search_name FROM search_results WHERE search_name = 'Evil'") == []
    assert rsettings.rejects is not None
    assert sorted(line["file"] for line in _rejects_file(rsettings.rejects)) == [
        "2025-08-03/NY/Bad_parse.json", "2025-08-03/PA/Evil_parse.json", "2025-08-03/TX/Bad_parse.json"]

    scrape.search("2025-08-04/PA/Belmar_01", document(ts="2025-08-04T10:00:00"))
    again = pipeline.run(rsettings)
    assert again.files_found == 6
    assert again.files_found == again.files_loaded + again.files_rejected + again.files_skipped
    assert again.files_rejected == 3


def test_an_unchanged_rejected_file_is_reported_again_without_being_read(rsettings: Settings, scrape: Scrape,
                                                                           dsn: str) -> None:
    scrape.search("2025-08-03/PA/Belmar_01", document())
    bad = scrape.raw("2025-08-03/NY/Bad_parse.json", orjson.dumps(with_metadata(state="XX")))
    first = pipeline.run(rsettings)
    assert [(f, code) for f, code, _ in first.rejects] == [("2025-08-03/NY/Bad_parse.json", "invalid_state")]

    # Other bytes, same size and mtime: the re-run trusts the manifest and repeats the old reason.
    st = bad.stat()
    bad.write_bytes(orjson.dumps(with_metadata(state="NY")))
    os.utime(bad, ns=(st.st_atime_ns, st.st_mtime_ns))
    again = pipeline.run(rsettings)
    assert again.rejects == first.rejects
    assert (again.files_loaded, again.files_rejected, again.files_skipped) == (0, 1, 1)
    assert rsettings.rejects is not None
    assert [(line["file"], line["reason"]) for line in _rejects_file(rsettings.rejects)] == [
        ("2025-08-03/NY/Bad_parse.json", "invalid_state")]
    assert query(dsn, "SELECT count(*) FROM search_results WHERE search_state = 'NY'") == [(0,)]

    # Settings a parse depends on changed: the file is read again, and now it loads.
    other = pipeline.run(rsettings.replace(max_json_bytes=rsettings.max_json_bytes - 1))
    assert (other.files_loaded, other.files_rejected) == (1, 0)
    assert query(dsn, "SELECT count(*) FROM search_results WHERE search_state = 'NY'") == [(1,)]
