"""`pharmload verify` and `load --verify-writes` against a real database, store and scrape."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from loader.db import locks
from loader.run import digests, pipeline
from loader.settings import Settings
from loader.stores.local import storage_path
from tests.conftest import query
from tests.scrape import Scrape, document, license_


def tree(scrape: Scrape) -> None:
    scrape.search("2025-08-03/PA/Belmar_01", document(licenses=[license_(), license_(license_number="NP2")]))
    scrape.search("2025-08-03/FL/Beaker_01", document(name="Beaker", state="FL", licenses=[]))
    scrape.search("2025-08-04/PA/Belmar_01", document(ts="2025-08-04T10:00:00",
                                                      licenses=[license_(license_status="Expired")]))


def verify_args(settings: Settings, *extra: str, states: bool = True) -> list[str]:
    args = [sys.executable, "-m", "loader", "verify", "--backend", "postgresql", "--dsn", settings.dsn,
            "--tag", settings.tag or "", "--image-dir", str(settings.image_dir), "--max-workers", "1", *extra]
    return args + (["--states-dir", str(settings.states_dir)] if states else [])


def verify(settings: Settings, *extra: str, states: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(verify_args(settings, *extra, states=states), capture_output=True, text=True,
                          timeout=120, env=dict(os.environ))


def sql(dsn: str, text: str) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute(text)


def shot_path(settings: Settings, scrape: Scrape, rel: str) -> Path:
    return settings.image_dir / storage_path(hashlib.sha256((scrape.root / rel).read_bytes()).hexdigest())


def test_a_clean_load_verifies_with_the_true_counts(settings: Settings, scrape: Scrape, tmp_path: Path) -> None:
    tree(scrape)
    pipeline.run(settings)
    report = tmp_path / "verify.json"
    res = verify(settings, "--deep", "--report-json", str(report))
    assert res.returncode == 0, res.stderr
    assert "verify: ok (3 rows, 3 screenshots checked)" in res.stdout
    section = json.loads(report.read_text())["verify"]
    assert section["result"] == "ok" and section["checked"] == 3 and section["images_checked"] == 3


NEWER = "2025-08-05/PA/Belmar_01"
EXTRA_ROW = ("INSERT INTO search_results (dataset_id, search_name, search_state, search_ts, license_number, "
             "result_status) SELECT dataset_id, 'Gone', 'TX', now(), 'TX9', 'found' FROM search_results LIMIT 1")


@pytest.mark.parametrize(("change", "code", "line", "summary"), [
    ("UPDATE search_results SET license_status = 'Revoked' WHERE license_number = 'NP2'", 4,
     "pharmload: verify: PA / Belmar / license NP2: values differ (license_status)",
     "verify: mismatch (1 problems: 1 values differ; 3 rows, 3 screenshots checked)"),
    ("DELETE FROM search_results WHERE search_state = 'FL'", 4,
     "pharmload: verify: FL / Beaker / no license: missing",
     "verify: mismatch (1 problems: 1 missing; 3 rows, 2 screenshots checked)"),  # its screenshot: no row now
    (NEWER, 4, "pharmload: verify: PA / Belmar / license NP002169: older than the scrape",
     "verify: mismatch (1 problems: 1 older than the scrape; 3 rows, 3 screenshots checked)"),
    (EXTRA_ROW, 0, "pharmload: verify: TX / Gone / license TX9: not in scrape (information)",
     "verify: ok (3 rows, 3 screenshots checked); information: 1 not in scrape"),
])
def test_each_kind_of_row_difference_is_named(change: str, code: int, line: str, summary: str, settings: Settings,
                                              scrape: Scrape) -> None:
    tree(scrape)
    pipeline.run(settings)
    if change == NEWER:  # a newer search the database has not been given yet
        scrape.search(NEWER, document(ts="2025-08-05T10:00:00", licenses=[license_()]))
    else:  # a row changed behind the loader's back
        sql(settings.dsn, change)
    res = verify(settings)
    assert res.returncode == code, res.stderr
    assert line in res.stderr.splitlines()
    assert summary in res.stdout


def test_a_lost_store_object_is_found_without_deep(settings: Settings, scrape: Scrape) -> None:
    tree(scrape)
    pipeline.run(settings)
    lost = shot_path(settings, scrape, "2025-08-03/FL/Beaker_01.png")
    lost.unlink()
    res = verify(settings, states=False)
    assert res.returncode == 4
    assert f"screenshot {lost.stem}: not in the store (local)" in res.stderr
    assert "(1 problems: 1 screenshots; 0 rows, 3 screenshots checked)" in res.stdout


def test_replaced_bytes_are_found_only_by_deep(settings: Settings, scrape: Scrape) -> None:
    tree(scrape)
    pipeline.run(settings)
    stored = shot_path(settings, scrape, "2025-08-03/FL/Beaker_01.png")
    size = stored.stat().st_size
    stored.unlink()  # a new file: the scrape's (a hard link's other name) keeps its bytes
    stored.write_bytes(b"X" * size)
    assert verify(settings).returncode == 0
    res = verify(settings, "--deep")
    assert res.returncode == 4
    assert f"screenshot {stored.stem}: stored bytes do not hash to their name" in res.stderr


def test_unknown_tag_and_empty_folder(settings: Settings, scrape: Scrape, tmp_path: Path) -> None:
    tree(scrape)
    pipeline.run(settings)
    res = verify(settings.replace(tag="nope"))
    assert res.returncode == 4 and "tag 'nope' has no dataset in this database" in res.stderr
    (tmp_path / "empty").mkdir()
    res = verify(settings, "--states-dir", str(tmp_path / "empty"), states=False)
    assert res.returncode == 4 and "holds no *_parse.json" in res.stderr


def test_verify_writes_covers_files_skipped_as_unchanged(settings: Settings, scrape: Scrape) -> None:
    tree(scrape)
    pipeline.run(settings)  # a plain load: no digests kept yet
    sidecar = digests.sidecar_path(settings.manifest_file)
    assert not sidecar.exists()
    checked = settings.replace(verify_writes="on")
    rep = pipeline.run(checked)  # nothing to load: the digests are made once, from the scrape
    assert rep.files_skipped == 3 and rep.verify["result"] == "ok"
    assert (rep.verify["checked"], rep.verify["images_checked"]) == (3, 3)
    assert sidecar.exists()
    sql(settings.dsn, "UPDATE search_results SET city = 'ELSEWHERE' WHERE license_number = 'NP2'")
    rep = pipeline.run(checked)  # from the sidecar this time
    assert rep.files_skipped == 3 and rep.verify["result"] == "mismatch"
    assert rep.verify["mismatches"] == [{"key": ["PA", "Belmar", "NP2"], "problem": "values differ (city)"}]
    assert rep.verify["checked"] == 3


def test_verify_writes_after_a_partial_change(settings: Settings, scrape: Scrape) -> None:
    tree(scrape)
    checked = settings.replace(verify_writes="deep")
    assert pipeline.run(checked).verify["result"] == "ok"
    scrape.search("2025-08-05/TX/Acme_01", document(name="Acme", state="TX", licenses=[license_(license_number="TX9")]))
    rep = pipeline.run(checked)
    assert rep.files_skipped == 3 and rep.rows_inserted == 1
    assert rep.verify["result"] == "ok" and rep.verify["checked"] == 4 and rep.verify["images_checked"] == 4
    assert query(settings.dsn, "SELECT count(*) FROM search_results") == [(4,)]


def test_a_screenshot_rewritten_under_an_unchanged_json_keeps_the_loaded_digest(
        settings: Settings, scrape: Scrape) -> None:
    tree(scrape)
    checked = settings.replace(verify_writes="on")
    assert pipeline.run(checked).verify["result"] == "ok"
    shot = scrape.root / "2025-08-03/FL/Beaker_01.png"
    shot.unlink()  # a new file (the store keeps its own bytes whatever the link mode)
    scrape.png("2025-08-03/FL/Beaker_01.png", filler=b"taken again")
    rep = pipeline.run(checked)
    assert rep.files_skipped == 3
    assert rep.verify["result"] == "ok" and rep.verify["checked"] == 3
    res = verify(settings)  # against the scrape as it is now, the stored screenshot is not the scrape's
    assert res.returncode == 4 and "FL / Beaker / no license: values differ (image_hash)" in res.stderr


def test_verify_waits_for_a_running_gc(settings: Settings, scrape: Scrape) -> None:
    tree(scrape)
    pipeline.run(settings)
    with psycopg.connect(settings.dsn) as gc:
        gc.execute("SELECT pg_advisory_xact_lock(%s, 0)", (locks.GC_NAMESPACE,))  # as gc holds it while deleting
        proc = subprocess.Popen(verify_args(settings, states=False), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        try:
            with pytest.raises(subprocess.TimeoutExpired):
                proc.wait(timeout=2)
            waiting = query(settings.dsn, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
            assert waiting == [(1,)]
            gc.rollback()
            out, err = proc.communicate(timeout=60)
        finally:
            proc.kill()
    assert proc.returncode == 0, err
    assert "verify: ok (0 rows, 3 screenshots checked)" in out


def test_full_reload_after_a_screenshot_rewrite_still_verifies(settings: Settings, scrape: Scrape) -> None:
    tree(scrape)
    checked = settings.replace(verify_writes="on")
    pipeline.run(checked)
    shot = scrape.root / "2025-08-03/FL/Beaker_01.png"
    shot.unlink()
    scrape.png("2025-08-03/FL/Beaker_01.png", filler=b"taken again")
    rep = pipeline.run(checked.replace(full=True))  # parsed again: the stored row keeps the loaded hash
    assert rep.rows_updated == 0
    assert rep.verify["result"] == "ok", rep.verify
