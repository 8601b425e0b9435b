"""frame.clean and frame.newest_per_key on small frames, no database."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import polars as pl
import pytest

from loader.scan import frame, parse

NULL_TOKENS = ["", "Not On File", "Not Available", "N/A", "NA", "---", "-", "None", "Unknown", "null"]
TS = 1_754_229_795_401_850  # 2025-08-03T14:03:15.401850Z in microseconds


def _rows(*rows: dict[str, Any]) -> pl.DataFrame:
    """Parsed rows (parse.ROW_SCHEMA) with defaults for the key and timestamp."""
    base = {"search_name": "Belmar", "search_state": "PA", "search_ts_us": TS, "license_number": "NP1",
            "result_status": "found", "lic_idx": 0}
    filled = [{**base, "file_id": i, **r} for i, r in enumerate(rows)]
    return pl.DataFrame(filled, schema=parse.ROW_SCHEMA)


def _token_variants() -> list[str]:
    out = []
    for token in NULL_TOKENS:
        out += [token, token.upper(), token.lower(), f"  {token}  ", f"{token}.", f" {token.title()}. "]
    return out


@pytest.mark.parametrize(("text", "expected"), [
    ("01/15/2020", date(2020, 1, 15)),
    ("1/5/2020", date(2020, 1, 5)),
    ("8/31/2027", date(2027, 8, 31)),
    ("2020-01-15", date(2020, 1, 15)),
    ("01-02-2020", date(2020, 1, 2)),
    ("January 15, 2020", date(2020, 1, 15)),
    ("Jan 15, 2020", date(2020, 1, 15)),
    ("15-Jan-2020", date(2020, 1, 15)),
    ("  12/31/1999 ", date(1999, 12, 31)),
    ("02/29/2020", date(2020, 2, 29)),
])
def test_clean_parses_every_date_format(text: str, expected: date) -> None:
    rows, warnings = frame.clean(_rows({"issue_date": text, "expiration_date": text}))
    assert rows.select("issue_date", "expiration_date").row(0) == (expected, expected)
    assert warnings.height == 0


def test_clean_null_tokens_become_null_without_warning() -> None:
    variants = _token_variants()
    rows, warnings = frame.clean(_rows(*({"issue_date": v, "expiration_date": v} for v in variants)))
    assert rows["issue_date"].to_list() == [None] * len(variants)
    assert rows["expiration_date"].to_list() == [None] * len(variants)
    assert warnings.height == 0


@pytest.mark.parametrize("text", ["02/30/2020", "2021-02-29", "13/45/2020", "not a date", "15-Foo-2020", "Jan 2020"])
def test_clean_invalid_date_is_null_with_one_warning(text: str) -> None:
    rows, warnings = frame.clean(_rows({"file_id": 7, "issue_date": text, "expiration_date": "01/15/2020"}))
    assert rows.select("issue_date", "expiration_date").row(0) == (None, date(2020, 1, 15))
    assert warnings.select("file_id", "kind").rows() == [(7, "invalid_date")]
    assert text[:20] in warnings["detail"][0]


def test_clean_trims_text_makes_empty_null_and_strips_nul() -> None:
    rows, _ = frame.clean(_rows({"license_status": "  Clear/ ", "license_name": "\tBEL\x00MAR \n", "city": "",
                                 "address": "   ", "state": " Florida ", "zip": "\x00", "license_number": " NP1 "}))
    got = rows.select("license_status", "license_name", "city", "address", "state", "zip", "license_number").row(0)
    assert got == ("Clear/", "BELMAR", None, None, "Florida", None, "NP1")


def test_clean_search_ts_is_a_utc_instant() -> None:
    rows, _ = frame.clean(_rows({"search_ts_us": TS}))
    assert rows["search_ts"][0] == datetime(2025, 8, 3, 14, 3, 15, 401850, tzinfo=UTC)


def _newest(*rows: dict[str, Any]) -> list[tuple[Any, ...]]:
    cleaned, _ = frame.clean(_rows(*rows))
    out = frame.newest_per_key(cleaned)
    return out.select("search_state", "search_name", "license_number", "license_status").sort(
        "search_state", "search_name", "license_number", nulls_last=True).rows()


def test_newest_per_key_newest_search_wins_whatever_the_file_order() -> None:
    got = _newest(
        {"search_ts_us": TS, "license_status": "middle"},
        {"search_ts_us": TS + 86_400_000_000, "license_status": "newest"},
        {"search_ts_us": TS - 86_400_000_000, "license_status": "oldest"},
    )
    assert got == [("PA", "Belmar", "NP1", "newest")]


def test_newest_per_key_tie_keeps_first_file_in_path_order() -> None:
    got = _newest({"license_status": "first"}, {"license_status": "second"})
    assert got == [("PA", "Belmar", "NP1", "first")]


def test_newest_per_key_null_license_numbers_are_one_key() -> None:
    got = _newest(
        {"license_number": None, "result_status": "not_found", "license_status": "old"},
        {"license_number": None, "result_status": "not_found", "license_status": "new", "search_ts_us": TS + 1},
        {"license_number": None, "search_name": "Beaker", "license_status": "other name"},
        {"license_number": None, "search_state": "FL", "license_status": "other state"},
    )
    assert got == [("FL", "Belmar", None, "other state"), ("PA", "Beaker", None, "other name"),
                   ("PA", "Belmar", None, "new")]


def test_newest_per_key_keeps_distinct_keys() -> None:
    got = _newest({"license_number": "A"}, {"license_number": "B"}, {"license_number": "A", "search_name": "X"})
    assert got == [("PA", "Belmar", "A", None), ("PA", "Belmar", "B", None), ("PA", "X", "A", None)]
