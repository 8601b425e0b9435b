"""`pharmload gc` on the local store: exactly the screenshots no row references go, rows and files;
files without a row only past the grace period; a dry run changes nothing; the locks hold."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

from loader.commands import admin, drop, gc
from loader.db.locks import GC_NAMESPACE
from loader.errors import LockBusyError
from loader.run import pipeline
from loader.settings import Settings
from tests.conftest import query
from tests.scrape import Scrape, document
from tests.support.lifecycle import dangling, digest, folder, image_rows, keys, local_objects, shot


def collect(settings: Settings, **changes: object) -> gc.Outcome:
    return gc.gc(settings.replace(command="gc", states_dir=None, **changes))


@pytest.fixture
def dropped(settings: Settings, scrape: Scrape) -> Settings:
    """Tag A (screenshots 0-5) dropped; tag B (3-8, then a later search of P8 with screenshot 9, so
    that 8 lost "newest wins") loaded."""
    pipeline.run(settings.replace(states_dir=folder(scrape, "a", range(6)), tag="A"))
    folder(scrape, "b/d1", range(3, 9))
    scrape.search("b/d2/PA/P8_01", document(name="P8", ts="2025-08-04T10:00:00"), image=False)
    scrape.raw("b/d2/PA/P8_01.png", shot(9))
    pipeline.run(settings.replace(states_dir=scrape.root / "b", tag="B"))
    drop.drop(settings.replace(command="drop", tag="A"), lambda plan: True)
    return settings


def test_gc_after_a_drop_removes_exactly_the_screenshots_no_other_tag_uses(dropped: Settings, dsn: str) -> None:
    assert set(local_objects(dropped.image_dir)) == keys(range(10))
    out = collect(dropped)
    kept = [3, 4, 5, 6, 7, 9]
    assert set(local_objects(dropped.image_dir)) == keys(kept)
    assert image_rows(dsn) == {digest(shot(i)) for i in kept}
    assert dangling(dsn, local_objects(dropped.image_dir)) == []
    assert (out.status, out.rows_removed, out.objects_removed, out.rowless_removed) == ("ok", 4, 4, 0)
    assert out.bytes_removed == sum(len(shot(i)) for i in (0, 1, 2, 8))
    again = collect(dropped)
    assert (again.rows_removed, again.objects_removed, again.bytes_removed) == (0, 0, 0)


def test_dry_run_counts_the_same_and_changes_nothing(dropped: Settings, dsn: str) -> None:
    rows = query(dsn, "SELECT * FROM image_assets ORDER BY 1")
    store = local_objects(dropped.image_dir)
    dry = collect(dropped, dry_run=True)
    assert query(dsn, "SELECT * FROM image_assets ORDER BY 1") == rows and local_objects(dropped.image_dir) == store
    real = collect(dropped)
    assert dry.status == "dry-run"
    fields = ("rows_removed", "objects_removed", "bytes_removed", "rowless_removed", "rowless_kept")
    assert [getattr(dry, f) for f in fields] == [getattr(real, f) for f in fields] != [0] * 5


def test_what_a_crashed_load_stored_goes_only_past_the_grace_period(settings: Settings, dsn: str,
                                                                     scrape: Scrape) -> None:
    admin.init_db(settings)  # without pharmload's tables, gc leaves the store alone: it may be another's
    tree = folder(scrape, "a", range(4))
    args = [sys.executable, "-m", "loader", "load", "--backend", "postgresql", "--dsn", dsn, "--states-dir",
            str(tree), "--tag", "A", "--image-dir", str(settings.image_dir), "--manifest-dir",
            str(settings.manifest_dir), "--max-workers", "1", "--image-link", "copy"]
    killed = subprocess.run(args, env={**os.environ, "PHARMLOAD_TEST_KILL_AT": "merged"}, capture_output=True,
                            timeout=120)
    assert killed.returncode == -signal.SIGKILL
    assert set(local_objects(settings.image_dir)) == keys(range(4)) and image_rows(dsn) == set()
    leftover = settings.image_dir / "sha256/ab/cd/.abcd.png.x1y2"  # a copy's temporary file
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"half a screenshot")

    young = collect(settings)  # --grace 24h: a load may still be storing them
    assert (young.objects_removed, young.rowless_kept) == (0, 4)
    assert len(local_objects(settings.image_dir)) == 5
    old = collect(settings, grace_seconds=0)
    assert (old.objects_removed, old.rowless_removed, old.rows_removed) == (5, 5, 0)
    assert local_objects(settings.image_dir) == {}

    assert subprocess.run(args, capture_output=True, timeout=120).returncode == 0  # stores them again
    assert set(local_objects(settings.image_dir)) == keys(range(4))
    assert dangling(dsn, local_objects(settings.image_dir)) == []


def test_rows_of_another_store_or_path_are_left_alone(dropped: Settings, dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute("""INSERT INTO image_assets (content_hash, storage_path, storage_type, file_size) VALUES
                        (repeat('e', 64), 'imagecache/ee/' || repeat('e', 64) || '.png', 'local', 10),
                        (repeat('f', 64), 'sha256/ff/ff/' || repeat('f', 64) || '.png', 'supabase', 10)""")
    out = collect(dropped)
    assert (out.rows_removed, out.rows_left) == (4, 2)
    assert query(dsn, "SELECT left(content_hash, 1) FROM image_assets WHERE file_size = 10 ORDER BY 1") == [
        ("e",), ("f",)]


def test_gc_waits_for_running_loads_and_loads_wait_for_gc(dropped: Settings, dsn: str, scrape: Scrape) -> None:
    with psycopg.connect(dsn, autocommit=True) as load:  # holds the lock every load shares
        load.execute("SELECT pg_advisory_lock_shared(%s, 0)", (GC_NAMESPACE,))
        with pytest.raises(LockBusyError, match=r"a load .* is running"):
            collect(dropped, lock_wait=False)
        done: list[gc.Outcome] = []
        waiting = threading.Thread(target=lambda: done.append(collect(dropped)))
        waiting.start()
        time.sleep(1.0)
        assert waiting.is_alive() and len(local_objects(dropped.image_dir)) == 10
        load.execute("SELECT pg_advisory_unlock_shared(%s, 0)", (GC_NAMESPACE,))
        waiting.join(30)
    assert done[0].rows_removed == 4

    with psycopg.connect(dsn, autocommit=True) as running_gc:
        running_gc.execute("SELECT pg_advisory_lock(%s, 0)", (GC_NAMESPACE,))
        with pytest.raises(LockBusyError, match="a gc is running"):
            pipeline.run(dropped.replace(states_dir=folder(scrape, "c", range(2)), tag="C", lock_wait=False))
    assert query(dsn, "SELECT count(*) FROM datasets WHERE tag = 'C'") == [(0,)]


def test_metrics_of_the_last_gc(dropped: Settings, tmp_path: Path) -> None:
    metrics = tmp_path / "pharmload.prom"
    collect(dropped, metrics_file=metrics, dry_run=True)
    assert not metrics.exists()
    collect(dropped, metrics_file=metrics)
    text = metrics.read_text()
    assert 'pharmload_cleanup_success{command="gc"} 1.0' in text
    assert 'pharmload_cleanup_removed_rows{command="gc",table="image_assets"} 4.0' in text
    assert 'pharmload_cleanup_removed_objects{command="gc"} 4.0' in text
    assert f'pharmload_cleanup_removed_bytes{{command="gc"}} {float(sum(len(shot(i)) for i in (0, 1, 2, 8)))}' in text
