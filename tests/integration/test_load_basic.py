"""A first end-to-end load through the library API, and the idempotent re-run."""

from __future__ import annotations

from loader.run import pipeline
from loader.settings import Settings
from tests.conftest import query
from tests.scrape import Scrape, document, license_


def test_load_then_identical_rerun_changes_nothing(settings: Settings, scrape: Scrape, dsn: str) -> None:
    scrape.search("2025-08-03/FL/Belmar_01", document(state="FL"))
    scrape.search("2025-08-03/PA/Belmar_01", document(licenses=[license_(), license_(license_number="X1")]))

    first = pipeline.run(settings)
    assert (first.rows_inserted, first.rows_updated, first.files_rejected) == (3, 0, 0)
    before = query(dsn, "SELECT * FROM search_results ORDER BY id")

    second = pipeline.run(settings)  # incremental: nothing changed on disk, nothing is parsed
    assert (second.files_skipped, second.files_loaded, second.rows_inserted, second.rows_updated) == (2, 0, 0, 0)
    assert query(dsn, "SELECT * FROM search_results ORDER BY id") == before

    full = pipeline.run(settings.replace(full=True))  # --full parses everything again: still no change
    assert (full.files_loaded, full.rows_inserted, full.rows_updated, full.rows_unchanged) == (2, 0, 0, 3)
    assert query(dsn, "SELECT * FROM search_results ORDER BY id") == before
    assert query(dsn, "SELECT count(*) FROM image_assets") == [(2,)]
    assert query(dsn, "SELECT count(*), min(status) FROM load_runs") == [(3, "ok")]
