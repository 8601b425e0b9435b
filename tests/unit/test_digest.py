"""scan/digest.py: each row's digest is the md5 of exactly the text sql/verify_canon.sql builds."""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

import polars as pl

from loader.scan import digest, images, parse
from tests.scrape import Scrape, document, license_

SEP = "\x1f"


def _digests(scrape: Scrape) -> pl.DataFrame:
    rels = sorted(str(p.relative_to(scrape.root)) for p in scrape.root.rglob("*_parse.json"))
    roots = images.Roots((str(scrape.root),), 4)
    task = parse.ParseTask(file_ids=list(range(len(rels))), paths=[str(scrape.root / r) for r in rels], rels=rels,
                           roots=roots, want_canon=True)
    return digest.digest_chunk(task).digests


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def test_the_digest_is_the_md5_of_the_canonical_fields_and_the_screenshot(tmp_path: Path) -> None:
    scrape = Scrape(tmp_path)
    scrape.search("PA/Belmar_01", document(licenses=[license_(issue_date="01/02/1970")]))
    row = _digests(scrape).row(0, named=True)
    shot = hashlib.sha256((tmp_path / "PA/Belmar_01.png").read_bytes()).hexdigest()
    fields = ["PA", "Belmar", "NP002169", "Active", "BELMAR PHARMACY", "Nonresident Pharmacy",
              "2500 LAKEPOINTE PARKWAY", "ODESSA", "Florida", "33556", "found", "1",
              str((date(2027, 8, 31) - date(1970, 1, 1)).days), str(row["search_ts_us"]), shot]
    assert len(fields) == len(digest.CANON_FIELDS)
    assert row["image_hash"] == shot
    assert row["content_md5"] == _md5(SEP.join(fields))


def test_no_screenshot_and_null_values_are_written_as_backslash_n(tmp_path: Path) -> None:
    scrape = Scrape(tmp_path)
    scrape.search("FL/Beaker_01", document(name="Beaker", state="FL", licenses=[]), image=False)
    row = _digests(scrape).row(0, named=True)
    assert row["image_hash"] is None and row["license_number"] is None
    nulls = ["\\N"] * 8
    expected = SEP.join(["FL", "Beaker", *nulls, "found", "\\N", "\\N", str(row["search_ts_us"]), "\\N"])
    assert row["content_md5"] == _md5(expected)


def test_every_value_counts_and_every_row_of_every_file_is_kept(tmp_path: Path) -> None:
    scrape = Scrape(tmp_path)
    scrape.search("a/PA/Belmar_01", document(licenses=[license_(), license_(license_number="NP2")]))
    scrape.search("b/PA/Belmar_01", document(licenses=[license_(license_status="Expired")]))
    found = _digests(scrape)
    assert found.height == 3  # the same key twice: the database side picks the newest
    keys = found.select("file_order", "lic_idx", "license_number").rows()
    assert keys == [(0, 0, "NP002169"), (0, 1, "NP2"), (1, 0, "NP002169")]
    first, _, other = found["content_md5"].to_list()
    assert first != other  # one column (license_status) differs
    assert found["content_md5"].n_unique() == 3
