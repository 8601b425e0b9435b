"""Every rule of FORMAT.md, loaded through pipeline.run into a real PostgreSQL database."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from loader.commands import admin
from loader.run import pipeline
from loader.settings import Settings
from tests.conftest import query
from tests.scrape import PLACEHOLDER, Scrape, document, license_, png

LICENSE_COLUMNS = ("license_number", "license_status", "license_name", "license_type", "address", "city", "state",
                   "zip", "issue_date", "expiration_date")
NULL_TOKENS = ["", "Not On File", "Not Available", "N/A", "NA", "---", "-", "None", "Unknown", "null"]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def by_license(dsn: str, column: str) -> dict[str | None, Any]:
    return dict(query(dsn, f"SELECT license_number, {column} FROM search_results"))  # noqa: S608


def store_files(image_dir: Path) -> list[Path]:
    return sorted(p for p in image_dir.rglob("*") if p.is_file()) if image_dir.exists() else []


# -- "no results" -------------------------------------------------------------------


@pytest.mark.parametrize(("licenses", "status", "expected"), [
    pytest.param([], "no_results_found", "no_results_found", id="empty-list"),
    pytest.param([], None, "not_found", id="empty-list-no-status"),
    pytest.param([PLACEHOLDER], "no_results_found", "no_results_found", id="placeholder"),
    pytest.param([PLACEHOLDER], None, "not_found", id="placeholder-no-status"),
    pytest.param([PLACEHOLDER], "", "not_found", id="placeholder-empty-status"),
    pytest.param([PLACEHOLDER], "   ", "not_found", id="placeholder-blank-status"),
])
def test_no_results_is_one_row_with_null_license(settings: Settings, scrape: Scrape, dsn: str,
                                                  licenses: list[Any], status: str | None, expected: str) -> None:
    scrape.search("2025-08-03/PA/Beaker_01", document(name="Beaker", licenses=licenses, result_status=status))
    rep = pipeline.run(settings)
    assert (rep.files_loaded, rep.files_rejected, rep.rows_inserted) == (1, 0, 1)
    rows = query(dsn, f"SELECT search_name, search_state, result_status, {', '.join(LICENSE_COLUMNS)} "  # noqa: S608
                      "FROM search_results")
    assert rows == [("Beaker", "PA", expected, *([None] * len(LICENSE_COLUMNS)))]


def test_found_license_without_status_is_found(settings: Settings, scrape: Scrape, dsn: str) -> None:
    scrape.search("2025-08-03/PA/Belmar_01", document(licenses=[license_(), license_(license_number="X2")],
                                                      result_status=None))
    pipeline.run(settings)
    assert by_license(dsn, "result_status") == {"NP002169": "found", "X2": "found"}


def test_every_parse_json_at_any_depth_is_one_search(settings: Settings, scrape: Scrape, dsn: str) -> None:
    scrape.json("top_parse.json", document(name="Top"))
    scrape.json("a/b/c/2025-08-03/PA/Deep_parse.json", document(name="Deep"))
    scrape.json("2025-08-03/PA/notes.json", document(name="NotASearch"))
    scrape.json("2025-08-03/PA/Old_parse.json.bak", document(name="NotASearch2"))
    rep = pipeline.run(settings)
    assert rep.files_found == 2
    assert sorted(r[0] for r in query(dsn, "SELECT search_name FROM search_results")) == ["Deep", "Top"]


# -- dates ----------------------------------------------------------------------------


DATES = {
    "01/15/2020": date(2020, 1, 15),
    "1/5/2020": date(2020, 1, 5),
    "8/31/2027": date(2027, 8, 31),
    "2020-01-15": date(2020, 1, 15),
    "01-02-2020": date(2020, 1, 2),
    "January 15, 2020": date(2020, 1, 15),
    "Jan 15, 2020": date(2020, 1, 15),
    "15-Jan-2020": date(2020, 1, 15),
    " 12/31/1999 ": date(1999, 12, 31),
}


def test_every_date_format(settings: Settings, scrape: Scrape, dsn: str) -> None:
    licenses = [license_(license_number=f"L{i}", issue_date=text, expiration_date=text) for i, text in enumerate(DATES)]
    scrape.search("2025-08-03/PA/Belmar_01", document(licenses=licenses))
    rep = pipeline.run(settings)
    expected = {f"L{i}": (d, d) for i, d in enumerate(DATES.values())}
    rows = query(dsn, "SELECT license_number, issue_date, expiration_date FROM search_results")
    got = {n: (i, e) for n, i, e in rows}
    assert got == expected
    assert rep.warnings_by_kind.get("invalid_date", 0) == 0


def test_every_null_token_is_null_without_warning(settings: Settings, scrape: Scrape, dsn: str) -> None:
    variants = []
    for token in NULL_TOKENS:
        variants += [token, token.upper(), token.lower(), f"  {token} ", f"{token}.", f" {token.title()}. "]
    licenses = [license_(license_number=f"T{i}", issue_date=v, expiration_date=v) for i, v in enumerate(variants)]
    scrape.search("2025-08-03/PA/Belmar_01", document(licenses=licenses))
    rep = pipeline.run(settings)
    got = query(dsn, "SELECT license_number, issue_date, expiration_date FROM search_results")
    assert len(got) == len(variants)
    assert [r for r in got if r[1:] != (None, None)] == []
    assert rep.warnings_by_kind.get("invalid_date", 0) == 0


def test_invalid_date_is_null_with_a_warning_and_the_file_still_loads(settings: Settings, scrape: Scrape,
                                                                      dsn: str) -> None:
    bad = ["02/30/2020", "2021-02-29", "13/45/2020", "not a date", "15-Foo-2020"]
    licenses = [license_(license_number=f"B{i}", issue_date=text, expiration_date="01/15/2020")
                for i, text in enumerate(bad)]
    scrape.search("2025-08-03/PA/Belmar_01", document(licenses=licenses))
    rep = pipeline.run(settings)
    assert (rep.files_loaded, rep.files_rejected, rep.rows_inserted) == (1, 0, len(bad))
    assert rep.warnings_by_kind.get("invalid_date") == len(bad)
    assert {w["file"] for w in rep.warning_examples if w["kind"] == "invalid_date"} == {
        "2025-08-03/PA/Belmar_01_parse.json"}
    got = query(dsn, "SELECT license_number, issue_date, expiration_date, license_status FROM search_results")
    assert sorted(got) == [(f"B{i}", None, date(2020, 1, 15), "Active") for i in range(len(bad))]


# -- timestamps -----------------------------------------------------------------------


@pytest.mark.parametrize(("ts", "tz", "expected"), [
    ("2025-08-03T14:03:15.401850", "UTC", datetime(2025, 8, 3, 14, 3, 15, 401850, tzinfo=UTC)),
    ("2025-08-03T10:00:00", "America/New_York", datetime(2025, 8, 3, 14, 0, tzinfo=UTC)),
    ("2025-01-15T09:00:00", "America/New_York", datetime(2025, 1, 15, 14, 0, tzinfo=UTC)),
    ("2025-08-03T14:03:15Z", "America/New_York", datetime(2025, 8, 3, 14, 3, 15, tzinfo=UTC)),
    ("2025-08-03T09:00:00-05:00", "UTC", datetime(2025, 8, 3, 14, 0, tzinfo=UTC)),
])
def test_search_ts_is_the_instant(settings: Settings, scrape: Scrape, dsn: str, ts: str, tz: str,
                                  expected: datetime) -> None:
    scrape.search("2025-08-03/PA/Belmar_01", document(ts=ts))
    pipeline.run(settings.replace(source_timezone=tz))
    assert query(dsn, "SELECT search_ts FROM search_results") == [(expected,)]


def test_default_source_timezone_is_utc() -> None:
    assert Settings().source_timezone == "UTC"


def test_offset_timestamps_compared_as_instants_within_one_load(settings: Settings, scrape: Scrape,
                                                                 dsn: str) -> None:
    # 09:00-05:00 is 14:00Z: newer than 13:00 naive UTC, although "09" < "13" and its folder sorts first.
    scrape.search("2025-08-03/PA/Belmar_01", document(ts="2025-08-03T09:00:00-05:00",
                                                      licenses=[license_(license_status="Newer")]))
    scrape.search("2025-08-04/PA/Belmar_01", document(ts="2025-08-03T13:00:00",
                                                      licenses=[license_(license_status="Older")]))
    pipeline.run(settings)
    assert query(dsn, "SELECT license_status, search_ts FROM search_results") == [
        ("Newer", datetime(2025, 8, 3, 14, 0, tzinfo=UTC))]


@pytest.mark.parametrize("newer_first", [True, False])
def test_offset_timestamps_compared_as_instants_across_loads(settings: Settings, tmp_path: Path, dsn: str,
                                                             newer_first: bool) -> None:
    newer = document(ts="2025-08-03T09:00:00-05:00", licenses=[license_(license_status="Newer")])
    older = document(ts="2025-08-03T13:00:00", licenses=[license_(license_status="Older")])
    first, second = Scrape(tmp_path / "one"), Scrape(tmp_path / "two")
    first.search("2025-08-03/PA/Belmar_01", newer if newer_first else older)
    second.search("2025-08-03/PA/Belmar_01", older if newer_first else newer)
    pipeline.run(settings.replace(states_dir=first.root))
    rep = pipeline.run(settings.replace(states_dir=second.root))
    assert rep.rows_updated == (0 if newer_first else 1)
    assert query(dsn, "SELECT license_status FROM search_results") == [("Newer",)]


# -- duplicates -----------------------------------------------------------------------


@pytest.mark.parametrize("chunk_files", [2000, 1], ids=["one-chunk", "chunk-per-file"])
def test_newest_search_wins_within_one_load(settings: Settings, scrape: Scrape, dsn: str, chunk_files: int) -> None:
    scrape.search("2025-08-03/PA/Belmar_01", document(ts="2025-08-03T14:00:00", licenses=[
        license_(license_status="Day3"), license_(license_number="ONLY3")]))
    scrape.search("2025-08-04/PA/Belmar_01", document(ts="2025-08-04T14:00:00", licenses=[
        license_(license_status="Day4")]))
    scrape.search("2025-08-05/PA/Belmar_01", document(ts="2025-08-02T14:00:00", licenses=[
        license_(license_status="Day2 in a later folder")]))
    rep = pipeline.run(settings.replace(chunk_files=chunk_files))
    assert (rep.rows_inserted, rep.rows_updated) == (2, 0)
    assert by_license(dsn, "license_status") == {"NP002169": "Day4", "ONLY3": "Active"}
    assert query(dsn, "SELECT search_ts FROM search_results WHERE license_number = 'NP002169'") == [
        (datetime(2025, 8, 4, 14, 0, tzinfo=UTC),)]


@pytest.mark.parametrize("chunk_files", [2000, 1], ids=["one-chunk", "chunk-per-file"])
def test_a_tie_within_one_load_goes_to_the_first_file_in_path_order(settings: Settings, scrape: Scrape, dsn: str,
                                                                     chunk_files: int) -> None:
    """Equal search_ts, across chunks too: the first file in path order wins; the report counts rows
    parsed and the one row per key the merge read."""
    for folder, status in (("2025-08-05", "Later folder"), ("2025-08-03", "First folder"), ("2025-08-04", "Middle")):
        scrape.search(f"{folder}/PA/Belmar_01", document(ts="2025-08-03T14:00:00", licenses=[
            license_(license_status=status), license_(license_number=f"X-{folder}")]))
    rep = pipeline.run(settings.replace(chunk_files=chunk_files))
    assert (rep.rows_parsed, rep.rows_distinct, rep.rows_inserted) == (6, 4, 4)
    assert by_license(dsn, "license_status")["NP002169"] == "First folder"
    assert "(one per key: 4 of 6 parsed)" in rep.render()


def test_newest_search_wins_across_loads_and_equal_or_older_changes_nothing(settings: Settings, tmp_path: Path,
                                                                           dsn: str) -> None:
    day3, day4, again = Scrape(tmp_path / "d3"), Scrape(tmp_path / "d4"), Scrape(tmp_path / "again")
    day3.search("2025-08-03/PA/Belmar_01", document(ts="2025-08-03T14:00:00", licenses=[
        license_(license_status="Day3", expiration_date="8/31/2026")]))
    day4.search("2025-08-04/PA/Belmar_01", document(ts="2025-08-04T14:00:00", licenses=[
        license_(license_status="Day4", expiration_date="8/31/2027")]))
    again.search("2025-08-05/PA/Belmar_01", document(ts="2025-08-04T14:00:00", licenses=[
        license_(license_status="Same time, other content")]))
    again.search("2025-08-06/FL/Belmar_01", document(state="FL", ts="2025-08-01T14:00:00"))
    again.search("2025-08-06/PA/Belmar_01", document(ts="2025-08-02T14:00:00", licenses=[
        license_(license_status="Older")]))

    assert pipeline.run(settings.replace(states_dir=day3.root)).rows_inserted == 1
    rep = pipeline.run(settings.replace(states_dir=day4.root))
    assert (rep.rows_inserted, rep.rows_updated) == (0, 1)
    assert query(dsn, "SELECT license_status, expiration_date, search_ts FROM search_results") == [
        ("Day4", date(2027, 8, 31), datetime(2025, 8, 4, 14, 0, tzinfo=UTC))]
    before = query(dsn, "SELECT * FROM search_results WHERE search_state = 'PA'")

    rep = pipeline.run(settings.replace(states_dir=again.root))
    assert (rep.rows_inserted, rep.rows_updated) == (1, 0)
    assert query(dsn, "SELECT * FROM search_results WHERE search_state = 'PA'") == before


def test_the_same_instant_written_differently_changes_nothing(settings: Settings, tmp_path: Path, dsn: str) -> None:
    first, second = Scrape(tmp_path / "one"), Scrape(tmp_path / "two")
    first.search("2025-08-03/PA/Belmar_01", document(ts="2025-08-03T14:00:00Z", licenses=[
        license_(license_status="First")]))
    second.search("2025-08-03/PA/Belmar_01", document(ts="2025-08-03T09:00:00-05:00", licenses=[
        license_(license_status="Same instant")]))
    pipeline.run(settings.replace(states_dir=first.root))
    rep = pipeline.run(settings.replace(states_dir=second.root, source_timezone="America/New_York"))
    assert (rep.rows_inserted, rep.rows_updated) == (0, 0)
    assert query(dsn, "SELECT license_status FROM search_results") == [("First",)]


def test_identical_rerun_reports_nothing_inserted_or_updated(settings: Settings, scrape: Scrape, dsn: str) -> None:
    scrape.search("2025-08-03/PA/Belmar_01", document(licenses=[license_(), license_(license_number="X1")]))
    scrape.search("2025-08-03/PA/Beaker_01", document(name="Beaker", licenses=[PLACEHOLDER],
                                                      result_status="no_results_found"))
    scrape.search("2025-08-04/PA/Belmar_01", document(ts="2025-08-04T10:00:00-05:00"))
    first = pipeline.run(settings)
    assert (first.rows_inserted, first.rows_updated) == (3, 0)
    before = query(dsn, "SELECT * FROM search_results ORDER BY id")
    second = pipeline.run(settings)
    assert (second.rows_inserted, second.rows_updated) == (0, 0)
    assert second.files_found == second.files_loaded + second.files_rejected + second.files_skipped == 3
    assert query(dsn, "SELECT * FROM search_results ORDER BY id") == before
    full = pipeline.run(settings.replace(full=True))  # every file parsed again: still nothing changes
    assert (full.files_loaded, full.rows_inserted, full.rows_updated, full.rows_unchanged) == (3, 0, 0, 3)
    assert query(dsn, "SELECT * FROM search_results ORDER BY id") == before


def test_no_result_searches_of_one_name_are_one_row(settings: Settings, tmp_path: Path, dsn: str) -> None:
    first, second = Scrape(tmp_path / "one"), Scrape(tmp_path / "two")
    first.search("2025-08-03/PA/Beaker_01", document(name="Beaker", ts="2025-08-03T10:00:00", licenses=[],
                                                     result_status=None))
    first.search("2025-08-04/PA/Beaker_01", document(name="Beaker", ts="2025-08-04T10:00:00", licenses=[PLACEHOLDER],
                                                     result_status="no_results_found"))
    second.search("2025-08-05/PA/Beaker_01", document(name="Beaker", ts="2025-08-05T10:00:00", licenses=[],
                                                      result_status=None))
    rep = pipeline.run(settings.replace(states_dir=first.root))
    assert rep.rows_inserted == 1
    assert query(dsn, "SELECT result_status, search_ts FROM search_results") == [
        ("no_results_found", datetime(2025, 8, 4, 10, 0, tzinfo=UTC))]
    rep = pipeline.run(settings.replace(states_dir=second.root))
    assert (rep.rows_inserted, rep.rows_updated) == (0, 1)
    assert query(dsn, "SELECT result_status, search_ts FROM search_results") == [
        ("not_found", datetime(2025, 8, 5, 10, 0, tzinfo=UTC))]


# -- values ---------------------------------------------------------------------------


def test_numeric_license_numbers_and_zips_are_stored_as_text(settings: Settings, scrape: Scrape, dsn: str) -> None:
    lic = license_(license_number=12345)
    lic["address"]["zip_code"] = 33556
    scrape.search("2025-08-03/PA/Belmar_01", document(licenses=[lic, license_(license_number=1234567890123)]))
    pipeline.run(settings)
    assert by_license(dsn, "zip") == {"12345": "33556", "1234567890123": "33556"}
    assert query(dsn, "SELECT raw->'search_result'->'licenses'->0->'license_number' FROM search_results "
                      "WHERE license_number = '12345'") == [(12345,)]


def test_long_numeric_license_number_keeps_its_digits(settings: Settings, scrape: Scrape, dsn: str) -> None:
    """A JSON number too long for 64 bits is still digits: its text is stored, not a rounded float."""
    text = '{"pharmacy_name": "BELMAR PHARMACY", "license_number": 123456789012345678901234567890}'
    doc = orjson.dumps(document(licenses=[])).replace(b'"licenses":[]', b'"licenses":[' + text.encode() + b"]")
    scrape.raw("2025-08-03/PA/Belmar_01_parse.json", doc)
    rep = pipeline.run(settings)
    assert rep.files_rejected == 0
    assert query(dsn, "SELECT license_number FROM search_results") == [("123456789012345678901234567890",)]


def test_nul_characters_removed_from_columns_and_json(settings: Settings, scrape: Scrape, dsn: str) -> None:
    lic = license_(license_status="Act\u0000ive", pharmacy_name="BELMAR\u0000 PHARMACY", license_number="NP\u00001")
    lic["address"]["city"] = "\u0000ODESSA"
    doc = document(name="Bel\u0000mar", state="P\u0000A", licenses=[lic], note="x\u0000y")
    doc["debug_info"] = {"parser\u0000strategy": "Re\u0000gex"}
    scrape.search("2025-08-03/PA/Belmar_01", doc)
    rep = pipeline.run(settings)
    assert (rep.files_loaded, rep.files_rejected) == (1, 0)
    assert query(dsn, "SELECT search_name, search_state, license_number, license_status, license_name, city "
                      "FROM search_results") == [("Belmar", "PA", "NP1", "Active", "BELMAR PHARMACY", "ODESSA")]
    meta, raw = query(dsn, "SELECT meta, raw FROM search_results")[0]
    assert meta["pharmacy_name"] == "Belmar" and meta["note"] == "xy"
    assert raw["debug_info"] == {"parserstrategy": "Regex"}
    assert raw["search_result"]["licenses"][0]["license_status"] == "Active"
    assert query(dsn, "SELECT position(chr(92) || 'u0000' in meta::text || raw::text) FROM search_results") == [(0,)]


def test_utf8_bom_is_accepted(settings: Settings, scrape: Scrape, dsn: str) -> None:
    doc = document(licenses=[license_(pharmacy_name="CAFÉ PHARMACY")])
    scrape.png("2025-08-03/PA/Belmar_01.png")
    scrape.raw("2025-08-03/PA/Belmar_01_parse.json", b"\xef\xbb\xbf" + orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    rep = pipeline.run(settings)
    assert (rep.files_loaded, rep.files_rejected) == (1, 0)
    assert query(dsn, "SELECT license_name, raw FROM search_results") == [("CAFÉ PHARMACY", doc)]


def test_state_codes_and_text_fields(settings: Settings, scrape: Scrape, dsn: str) -> None:
    lic = license_(license_status="  Clear/ ", pharmacy_name="  BELMAR PHARMACY\t", license_type="\n",
                   license_number=" NP1 ")
    lic["address"] = {"street": "   ", "suite": "", "city": " ODESSA ", "state": "Florida", "zip_code": ""}
    scrape.search("2025-08-03/PA/Belmar_01", document(name="  Belmar ", state=" pa ", licenses=[lic]))
    scrape.search("2025-08-03/FL/Belmar_01", document(state="fl", licenses=[license_(license_number="NP2")]))
    pipeline.run(settings)
    rows = query(dsn, "SELECT search_name, search_state, license_number, license_status, license_name, license_type, "
                      "address, city, state, zip FROM search_results ORDER BY search_state")
    assert rows == [
        ("Belmar", "FL", "NP2", "Active", "BELMAR PHARMACY", "Nonresident Pharmacy", "2500 LAKEPOINTE PARKWAY",
         "ODESSA", "Florida", "33556"),
        ("Belmar", "PA", "NP1", "Clear/", "BELMAR PHARMACY", None, None, "ODESSA", "Florida", None),
    ]


def test_meta_is_the_metadata_object_and_raw_the_whole_file(settings: Settings, scrape: Scrape, dsn: str) -> None:
    doc = document(source_image_file="data/2025-08-03/PA/Belmar_01.png",
                   output_directory="/home/scraper/pharmchecker/data/2025-08-03/PA")
    doc["warnings"] = ["something odd", {"nested": [1, 2.5, None, True]}]
    scrape.search("2025-08-03/PA/Belmar_01", doc)
    pipeline.run(settings)
    assert query(dsn, "SELECT jsonb_typeof(meta), jsonb_typeof(raw), meta, raw FROM search_results") == [
        ("object", "object", doc["metadata"], doc)]


# -- datasets -------------------------------------------------------------------------


def test_dataset_found_or_created_and_a_second_load_merges(settings: Settings, tmp_path: Path, dsn: str) -> None:
    first, second = Scrape(tmp_path / "one"), Scrape(tmp_path / "two")
    first.search("2025-08-03/PA/Belmar_01", document())
    second.search("2025-08-04/FL/Belmar_01", document(state="FL"))
    rep1 = pipeline.run(settings.replace(states_dir=first.root, description="first load"))
    rep2 = pipeline.run(settings.replace(states_dir=second.root))
    assert rep1.dataset_id == rep2.dataset_id
    assert query(dsn, "SELECT id, kind, tag FROM datasets") == [(rep1.dataset_id, "states", "test-tag")]
    assert query(dsn, "SELECT dataset_id, search_state FROM search_results ORDER BY search_state") == [
        (rep1.dataset_id, "FL"), (rep1.dataset_id, "PA")]

    assert query(dsn, "SELECT description, created_by FROM datasets") == [("first load", "pharmload")]

    rep3 = pipeline.run(settings.replace(states_dir=first.root, tag="other-tag"))
    assert rep3.dataset_id != rep1.dataset_id
    assert query(dsn, "SELECT kind, tag FROM datasets ORDER BY id") == [("states", "test-tag"),
                                                                       ("states", "other-tag")]
    assert query(dsn, "SELECT count(*) FROM search_results WHERE dataset_id = %s", (rep3.dataset_id,)) == [(1,)]


def test_dataset_of_another_kind_with_the_same_tag_is_not_used(settings: Settings, scrape: Scrape, dsn: str) -> None:
    admin.init_db(settings.replace(command="init-db"))
    [(other,)] = query(dsn, "INSERT INTO datasets (kind, tag) VALUES ('pharmacies', 'test-tag') RETURNING id")
    scrape.search("2025-08-03/PA/Belmar_01", document())
    rep = pipeline.run(settings)
    assert rep.dataset_id != other
    assert query(dsn, "SELECT kind, tag FROM datasets ORDER BY id") == [("pharmacies", "test-tag"),
                                                                       ("states", "test-tag")]
    assert query(dsn, "SELECT DISTINCT dataset_id FROM search_results") == [(rep.dataset_id,)]


# -- screenshots ----------------------------------------------------------------------


def test_orphan_screenshots_are_ignored(settings: Settings, scrape: Scrape, dsn: str) -> None:
    scrape.search("2025-08-03/FL/Belmar_01", document(state="FL"))
    orphan = scrape.png("2025-08-03/FL/Belmar_table.png")
    rep = pipeline.run(settings)
    hashes = [r[0] for r in query(dsn, "SELECT content_hash FROM image_assets")]
    assert hashes == [sha256((scrape.root / "2025-08-03/FL/Belmar_01.png").read_bytes())]
    assert sha256(orphan.read_bytes()) not in hashes
    assert len(store_files(settings.image_dir)) == 1
    assert rep.warnings_by_kind == {}


@pytest.mark.parametrize(("json_rel", "source", "png_rel"), [
    pytest.param("2025-08-03/PA/Belmar_01_parse.json", "data/2025-08-03/PA/Belmar_01.png",
                 "2025-08-03/PA/Belmar_01.png", id="scraper-relative"),
    pytest.param("2025-08-03/PA/Belmar_01_parse.json", "/home/scraper/pharmchecker/data/2025-08-03/PA/Belmar_01.png",
                 "2025-08-03/PA/Belmar_01.png", id="absolute"),
    pytest.param("2025-08-03/PA/Beaker_no_results_parse.json", "data/2025-08-03/PA/Beaker_01.png",
                 "2025-08-03/PA/Beaker_01.png", id="name-differs"),
    pytest.param("2025-08-03/PA/Belmar_01_parse.json", None, "2025-08-03/PA/Belmar_01.png", id="absent-stem"),
])
def test_screenshot_resolution(settings: Settings, scrape: Scrape, dsn: str, json_rel: str, source: str | None,
                               png_rel: str) -> None:
    expected = scrape.png(png_rel).read_bytes()
    # Decoys: the same name on another day, and a stem-named file next to the JSON.
    scrape.png("2025-08-04/PA/" + Path(png_rel).name)
    scrape.png("PA/" + Path(png_rel).name)
    if source is not None:
        scrape.png(json_rel.removesuffix("_parse.json") + ".png")
    scrape.json(json_rel, document(licenses=[license_(), license_(license_number="X2")], source_image_file=source))
    rep = pipeline.run(settings)
    assert query(dsn, "SELECT DISTINCT image_hash FROM search_results") == [(sha256(expected),)]
    assert query(dsn, "SELECT content_hash FROM image_assets") == [(sha256(expected),)]
    assert rep.warnings_by_kind.get("missing_image", 0) == 0


@pytest.mark.parametrize("source", ["data/2025-08-03/PA/Gone.png", None])
def test_unresolvable_screenshot_loads_rows_with_null_image(settings: Settings, scrape: Scrape, dsn: str,
                                                            source: str | None) -> None:
    scrape.search("2025-08-03/PA/Belmar_01", document(source_image_file=source), image=False)
    scrape.png("2025-08-03/PA/Other.png")
    rep = pipeline.run(settings)
    assert (rep.files_loaded, rep.files_rejected, rep.rows_inserted) == (1, 0, 1)
    assert query(dsn, "SELECT image_hash FROM search_results") == [(None,)]
    assert query(dsn, "SELECT count(*) FROM image_assets") == [(0,)]
    assert rep.warnings_by_kind.get("missing_image") == 1


def test_screenshot_outside_the_states_dir_is_never_read(settings: Settings, scrape: Scrape, tmp_path: Path,
                                                         dsn: str) -> None:
    # scrape/2025-08-03/PA/x_parse.json + "../../../outside/shadow.png" = tmp_path/outside/shadow.png, a real file.
    secret = tmp_path / "outside" / "shadow.png"
    secret.parent.mkdir()
    secret.write_bytes(png(filler=b"secret bytes"))
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "shadow").write_bytes(png(filler=b"shadow"))
    sources = {"FromJson": "../../../outside/shadow.png", "FromRoot": "../outside/shadow.png",
               "Absolute": str(secret), "Shadow": "../../../../etc/shadow", "ShadowRoot": "../etc/shadow"}
    for name, source in sources.items():
        scrape.json(f"2025-08-03/PA/{name}_parse.json", document(name=name, source_image_file=source))
    rep = pipeline.run(settings)
    assert rep.files_loaded == len(sources)
    assert query(dsn, "SELECT DISTINCT image_hash FROM search_results") == [(None,)]
    assert query(dsn, "SELECT count(*) FROM image_assets") == [(0,)]
    assert store_files(settings.image_dir) == []
    assert rep.warnings_by_kind.get("missing_image") == len(sources)


def test_screenshot_in_a_configured_image_root(settings: Settings, scrape: Scrape, tmp_path: Path, dsn: str) -> None:
    shots = Scrape(tmp_path / "shots")
    in_root = shots.png("2025-08-03/PA/Belmar_01.png").read_bytes()
    both_in_states = scrape.png("2025-08-03/FL/Belmar_01.png").read_bytes()
    shots.png("2025-08-03/FL/Belmar_01.png", filler=b"the image root copy")
    scrape.json("2025-08-03/PA/Belmar_01_parse.json", document(source_image_file="data/2025-08-03/PA/Belmar_01.png"))
    scrape.json("2025-08-03/FL/Belmar_01_parse.json", document(state="FL",
                                                               source_image_file="data/2025-08-03/FL/Belmar_01.png"))
    rep = pipeline.run(settings.replace(image_roots=(shots.root,)))
    assert rep.warnings_by_kind.get("missing_image", 0) == 0
    assert dict(query(dsn, "SELECT search_state, image_hash FROM search_results")) == {
        "PA": sha256(in_root), "FL": sha256(both_in_states)}


def test_screenshot_symlink_to_outside_is_not_read(settings: Settings, scrape: Scrape, tmp_path: Path,
                                                   dsn: str) -> None:
    secret = tmp_path / "outside.png"
    secret.write_bytes(png(filler=b"outside"))
    scrape.json("2025-08-03/PA/Belmar_01_parse.json", document())
    (scrape.root / "2025-08-03/PA/Belmar_01.png").symlink_to(secret)
    rep = pipeline.run(settings)
    assert query(dsn, "SELECT image_hash FROM search_results") == [(None,)]
    assert query(dsn, "SELECT count(*) FROM image_assets") == [(0,)]
    assert store_files(settings.image_dir) == []
    assert rep.warnings_by_kind.get("missing_image") == 1


@pytest.mark.parametrize("chunk_files", [2000, 1], ids=["one-chunk", "chunk-per-file"])
def test_shared_screenshot_is_one_image_row(settings: Settings, scrape: Scrape, dsn: str, chunk_files: int) -> None:
    shared = scrape.png("2025-08-03/PA/shared.png").read_bytes()
    scrape.json("2025-08-03/PA/Belmar_01_parse.json", document(source_image_file="data/2025-08-03/PA/shared.png"))
    scrape.json("2025-08-03/PA/Beaker_01_parse.json", document(name="Beaker",
                                                               source_image_file="data/2025-08-03/PA/shared.png"))
    # Identical bytes under two names are one screenshot too.
    twin = png(filler=b"twin")
    scrape.raw("2025-08-03/FL/A.png", twin)
    scrape.raw("2025-08-03/FL/B.png", twin)
    scrape.json("2025-08-03/FL/A_parse.json", document(name="A", state="FL"))
    scrape.json("2025-08-03/FL/B_parse.json", document(name="B", state="FL"))
    pipeline.run(settings.replace(chunk_files=chunk_files))
    assert dict(query(dsn, "SELECT search_name, image_hash FROM search_results")) == {
        "Belmar": sha256(shared), "Beaker": sha256(shared), "A": sha256(twin), "B": sha256(twin)}
    assert sorted(query(dsn, "SELECT content_hash FROM image_assets")) == sorted([(sha256(shared),), (sha256(twin),)])
    assert len(store_files(settings.image_dir)) == 2


def test_image_store_layout_and_image_assets_columns(settings: Settings, scrape: Scrape, dsn: str) -> None:
    shots = {"PA": png(800, 600, b"pa"), "FL": png(1920, 1080, b"fl" * 5000)}
    for state, data in shots.items():
        scrape.raw(f"2025-08-03/{state}/Belmar_01.png", data)
        scrape.json(f"2025-08-03/{state}/Belmar_01_parse.json", document(state=state))
    rep = pipeline.run(settings)
    assert rep.images_stored == 2
    rows = {r[0]: r[1:] for r in query(dsn, "SELECT content_hash, storage_path, storage_type, file_size, "
                                            "content_type, width, height FROM image_assets")}
    expected = {}
    for data, (w, h) in zip(shots.values(), [(800, 600), (1920, 1080)], strict=True):
        digest = sha256(data)
        expected[digest] = (f"sha256/{digest[:2]}/{digest[2:4]}/{digest}.png", "local", len(data), "image/png", w, h)
        assert (settings.image_dir / expected[digest][0]).read_bytes() == data
    assert rows == expected
    assert len(store_files(settings.image_dir)) == 2
    assert dict(query(dsn, "SELECT search_state, image_hash FROM search_results")) == {
        s: sha256(d) for s, d in shots.items()}


def test_stored_screenshot_keeps_its_bytes_when_the_scrape_changes(settings: Settings, scrape: Scrape,
                                                                   dsn: str) -> None:
    """With --image-link copy, a file in the store always hashes to its name, whatever the scraper does."""
    shot = scrape.png("2025-08-03/PA/Belmar_01.png")
    original = shot.read_bytes()
    scrape.json("2025-08-03/PA/Belmar_01_parse.json", document())
    pipeline.run(settings.replace(image_link=False))
    with shot.open("r+b") as f:  # the scraper rewrites its screenshot in place
        f.write(png(filler=b"rewritten by a later scrape"))
    stored = settings.image_dir / query(dsn, "SELECT storage_path FROM image_assets")[0][0]
    assert stored.read_bytes() == original
    assert sha256(stored.read_bytes()) == stored.stem


def test_second_load_reuses_stored_screenshots(settings: Settings, tmp_path: Path, dsn: str) -> None:
    first, second = Scrape(tmp_path / "one"), Scrape(tmp_path / "two")
    data = png(filler=b"same screenshot")
    first.raw("2025-08-03/PA/Belmar_01.png", data)
    first.json("2025-08-03/PA/Belmar_01_parse.json", document())
    second.raw("2025-08-04/PA/Belmar_01.png", data)
    second.json("2025-08-04/PA/Belmar_01_parse.json", document(ts="2025-08-04T10:00:00"))
    assert pipeline.run(settings.replace(states_dir=first.root)).images_stored == 1
    rep = pipeline.run(settings.replace(states_dir=second.root))
    assert (rep.images_stored, rep.images_new_rows, rep.rows_updated) == (0, 0, 1)
    assert query(dsn, "SELECT count(*) FROM image_assets") == [(1,)]
    assert query(dsn, "SELECT image_hash FROM search_results") == [(sha256(data),)]


def test_stored_screenshot_is_a_hard_link_when_asked(settings: Settings, scrape: Scrape, dsn: str) -> None:
    """--image-link link trades that independence for speed: the store shares the scrape's file."""
    shot = scrape.png("2025-08-03/PA/Belmar_01.png")
    scrape.json("2025-08-03/PA/Belmar_01_parse.json", document())
    pipeline.run(settings.replace(image_link=True))
    stored = settings.image_dir / query(dsn, "SELECT storage_path FROM image_assets")[0][0]
    assert stored.stat().st_ino == shot.stat().st_ino
