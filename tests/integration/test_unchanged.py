"""A re-run of an unchanged tree (unchanged.py): taken only when nothing changed, and then the same
outcome as the full pipeline's re-run; anything else goes the full way and is mended there."""

from __future__ import annotations

import os
from typing import Any

import psycopg
import pytest

from loader.report import Report
from loader.run import pipeline, unchanged
from loader.scan import parse
from loader.settings import Settings
from tests.conftest import query
from tests.scrape import Scrape, document, license_

RUNS = ("SELECT status, files_seen, files_loaded, files_skipped, files_rejected, rows_inserted, rows_updated, "
        "rows_unchanged, images_stored, manifest_digest FROM load_runs ORDER BY id")


def _tree(scrape: Scrape) -> None:
    for day in (3, 4):
        for i, (name, state) in enumerate([("Belmar", "PA"), ("Beaker", "FL"), ("Wells", "TX")]):
            lic = [license_(license_number=f"{state}{i}{day}")]
            scrape.search(f"2025-08-0{day}/{state}/{name}_0{i}",
                          document(name=name, state=state, ts=f"2025-08-0{day}T1{i}:00:00", licenses=lic))
        scrape.raw(f"2025-08-0{day}/TX/Broken_parse.json", b'{"metadata": ')


def _outcome(rep: Report) -> dict[str, Any]:
    keep = ("status", "files_found", "files_loaded", "files_skipped", "files_rejected", "rejects", "rows_staged",
            "rows_inserted", "rows_updated", "rows_unchanged", "images_stored", "images_new_rows", "dataset_id")
    return {k: v for k, v in rep.as_dict().items() if k in keep}


def test_an_unchanged_rerun_is_recorded_as_the_full_pipeline_records_it(settings: Settings, dsn: str,
                                                                        scrape: Scrape) -> None:
    _tree(scrape)
    pipeline.run(settings)
    rows = query(dsn, "SELECT * FROM search_results ORDER BY id")
    fast = unchanged.rerun(settings)
    assert fast is not None and fast.note is not None and fast.note.startswith("tree unchanged")
    unchanged.seal_path(settings).unlink()  # the same re-run, the full way
    full = pipeline.run(settings)
    assert full.note is None
    assert _outcome(fast) == _outcome(full)
    assert fast.files_skipped == 6 and [r[:2] for r in fast.rejects] == [
        ("2025-08-03/TX/Broken_parse.json", "invalid_json"), ("2025-08-04/TX/Broken_parse.json", "invalid_json")]
    first, by_seal, by_pipeline = query(dsn, RUNS)
    assert by_seal == by_pipeline and by_seal[-1] == first[-1]  # the same tree, the same digest
    assert query(dsn, "SELECT * FROM search_results ORDER BY id") == rows
    assert unchanged.rerun(settings) is not None  # the full re-run sealed the manifest again


def test_a_changed_or_removed_file_goes_the_full_way(settings: Settings, dsn: str, scrape: Scrape) -> None:
    _tree(scrape)
    pipeline.run(settings)
    scrape.search("2025-08-04/PA/Belmar_00", document(ts="2025-08-04T18:00:00", licenses=[license_(
        license_number="PA04", license_status="Expired")]))
    assert unchanged.rerun(settings) is None
    assert len(query(dsn, RUNS)) == 1  # nothing was written by the check
    rep = pipeline.run(settings)
    assert (rep.files_loaded, rep.rows_updated) == (1, 1)
    (scrape.root / "2025-08-03/FL/Beaker_01_parse.json").unlink()
    assert unchanged.rerun(settings) is None
    assert pipeline.run(settings).files_found == 7
    again = unchanged.rerun(settings)  # the manifest was left as it was; its seal now has one file less
    assert again is not None and again.files_found == 7


def test_a_lost_screenshot_or_a_reset_database_goes_the_full_way(settings: Settings, dsn: str,
                                                                  scrape: Scrape) -> None:
    _tree(scrape)
    pipeline.run(settings)
    next(settings.image_dir.rglob("*.png")).unlink()
    assert unchanged.rerun(settings) is None
    assert pipeline.run(settings).images_stored == 1  # put back by the pipeline
    assert unchanged.rerun(settings) is not None
    with_runs = len(query(dsn, RUNS))
    with psycopg.connect(dsn) as conn:  # a database restored from before the loads
        conn.execute("DELETE FROM load_runs")
    assert unchanged.rerun(settings) is None
    assert query(dsn, RUNS) == []  # the check rolled back
    rep = pipeline.run(settings)
    assert rep.files_loaded == 6 and with_runs == 3


def test_a_seal_for_another_manifest_settings_or_garbled_is_not_trusted(settings: Settings, scrape: Scrape) -> None:
    _tree(scrape)
    pipeline.run(settings)
    assert unchanged.read_seal(settings) is not None
    assert unchanged.read_seal(settings.replace(source_timezone="America/Chicago")) is None
    assert unchanged.rerun(settings.replace(full=True)) is None
    assert unchanged.rerun(settings.replace(verify_writes="on")) is None
    manifest = settings.manifest_file
    os.utime(manifest, ns=(manifest.stat().st_atime_ns, manifest.stat().st_mtime_ns + 1))  # rewritten since
    assert unchanged.read_seal(settings) is None
    pipeline.run(settings)
    assert unchanged.read_seal(settings) is not None
    unchanged.seal_path(settings).write_bytes(b'{"version": 1, "manifest": ')
    assert unchanged.rerun(settings) is None


def test_a_file_retried_by_every_run_gets_no_seal(settings: Settings, scrape: Scrape,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    _tree(scrape)
    scrape.json("2025-08-04/PA/Locked_parse.json", document(name="Locked", ts="2025-08-04T19:00:00"))
    real_load = parse._load

    def locked(path: str, max_bytes: int) -> Any:  # chmod 000 does not stop root: fail the read here
        if path.endswith("Locked_parse.json"):
            raise PermissionError(13, "Permission denied")
        return real_load(path, max_bytes)

    monkeypatch.setattr(parse, "_load", locked)
    rep = pipeline.run(settings)
    assert rep.rejects_by_reason["unreadable"] == 1
    assert unchanged.read_seal(settings) is None  # an unreadable file is read again by every run
    assert unchanged.rerun(settings) is None
    monkeypatch.undo()
    assert pipeline.run(settings).files_loaded == 1  # readable now: then the tree is sealed
    assert unchanged.rerun(settings) is not None


def test_a_seal_that_cannot_be_written_costs_only_the_fast_rerun(settings: Settings, scrape: Scrape,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    _tree(scrape)
    unchanged.seal_path(settings).mkdir(parents=True)  # a folder where the seal would go
    rep = pipeline.run(settings)
    assert rep.status == "ok" and rep.files_loaded == 6  # committed all the same
    assert "cannot write it" in caplog.text
    assert unchanged.rerun(settings) is None
    assert pipeline.run(settings).files_skipped == 6
