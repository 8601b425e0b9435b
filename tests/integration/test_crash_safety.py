"""Crash safety: kills at every point, dropped connections, manifests gone bad, concurrent loads.

Each scenario ends by comparing the whole database content and the image store with what one
clean, uninterrupted load of the same tree gives in a database of its own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent import futures
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import psycopg
import pytest

from loader.db.merge import LOCK_NAMESPACE
from loader.errors import DatabaseError, LockBusyError, TransientDatabaseError
from loader.run import pipeline, workers
from loader.settings import Settings
from tests.conftest import query
from tests.scrape import Scrape, document, license_

KILL_POINTS = ["planned", "parsing", "copying", "storing", "staged", "merged", "committed", "done"]


def build_tree(scrape: Scrape, days: range = range(3, 6)) -> None:
    """A few days of searches with repeats across days, shared and missing screenshots."""
    for day in days:
        for i, (name, state) in enumerate([("Belmar", "PA"), ("Beaker", "FL"), ("Wells", "TX"), ("Empower", "PA")]):
            stem = f"2025-08-0{day}/{state}/{name}_0{i}"
            lic = [license_(license_number=f"{state}{i}{k}", expiration_date=f"{day}/1{k}/2027") for k in range(2)]
            doc = document(name=name, state=state, ts=f"2025-08-0{day}T1{i}:00:00", licenses=lic)
            scrape.search(stem, doc)
        scrape.json(f"2025-08-0{day}/PA/Nobody_no_results_parse.json",
                    document(name="Nobody", ts=f"2025-08-0{day}T09:00:00", licenses=[], result_status=None,
                             source_image_file=f"data/2025-08-0{day}/PA/Belmar_00.png"))
        scrape.raw(f"2025-08-0{day}/TX/Broken_parse.json", b'{"metadata": ')


def snapshot(dsn: str, image_dir: Path) -> dict[str, Any]:
    """Everything a user would look at, without ids and clock times."""
    return {
        "datasets": query(dsn, "SELECT kind, tag FROM datasets ORDER BY tag"),
        "search_results": query(dsn, """
            SELECT d.tag, search_name, search_state, search_ts, license_number, license_status, license_name,
                   license_type, address, city, state, zip, issue_date, expiration_date, result_status,
                   meta, raw, image_hash
            FROM search_results r JOIN datasets d ON d.id = r.dataset_id
            ORDER BY 1, 2, 3, 5 NULLS FIRST"""),
        "image_assets": query(dsn, """SELECT content_hash, storage_path, storage_type, file_size, content_type,
                                      width, height FROM image_assets ORDER BY 1"""),
        "store": {str(p.relative_to(image_dir)): p.read_bytes()
                  for p in sorted(image_dir.rglob("*")) if p.is_file() and not p.name.startswith(".")},
    }


@pytest.fixture
def reference(admin_dsn: str, tmp_path: Path, scrape: Scrape, settings: Settings) -> dict[str, Any]:
    """The state one clean load of the tree leaves, in a database of its own."""
    from psycopg import sql
    from psycopg.conninfo import make_conninfo

    build_tree(scrape)
    name = f"pharmload_ref_{os.getpid()}_{time.monotonic_ns()}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    ref_dsn = make_conninfo(admin_dsn, dbname=name)
    try:
        ref = settings.replace(dsn=ref_dsn, image_dir=tmp_path / "ref-images", manifest_dir=tmp_path / "ref-man")
        pipeline.run(ref)
        return snapshot(ref_dsn, tmp_path / "ref-images")
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def cli(settings: Settings, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "loader", "load", "--backend", "postgresql", "--dsn", settings.dsn,
            "--states-dir", str(settings.states_dir), "--tag", settings.tag or "",
            "--image-dir", str(settings.image_dir), "--manifest-dir", str(settings.manifest_dir),
            "--retry-delay", "0.05", *extra]
    return subprocess.run(args, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=120)


@pytest.mark.parametrize("point", KILL_POINTS)
@pytest.mark.parametrize("workers", ["1", "2"])
def test_kill_anywhere_then_rerun_equals_clean_load(point: str, workers: str, settings: Settings, dsn: str,
                                                   reference: dict[str, Any]) -> None:
    killed = cli(settings, "--max-workers", workers, "--chunk-files", "3",
                 env={"PHARMLOAD_TEST_KILL_AT": point})
    assert killed.returncode == -signal.SIGKILL, killed.stderr

    rerun = cli(settings, "--max-workers", workers, "--chunk-files", "3")
    assert rerun.returncode == 1, rerun.stderr  # the broken files are rejected again
    assert snapshot(dsn, settings.image_dir) == reference
    runs = query(dsn, "SELECT count(*) FROM load_runs WHERE status = 'ok'")[0][0]
    assert runs == (2 if point in ("committed", "done") else 1)


def test_kill_after_commit_is_recognised_from_the_database(settings: Settings, dsn: str,
                                                          reference: dict[str, Any]) -> None:
    """Killed between commit and manifest save: the re-run learns from load_runs that it committed."""
    assert cli(settings, env={"PHARMLOAD_TEST_KILL_AT": "committed"}).returncode == -signal.SIGKILL
    rerun = pipeline.run(settings)
    assert rerun.files_skipped == rerun.files_found - 3  # the three broken files count as rejected again
    assert (rerun.rows_inserted, rerun.rows_updated) == (0, 0)
    assert snapshot(dsn, settings.image_dir) == reference


def test_resume_reuses_hashes_from_the_interrupted_run(settings: Settings, dsn: str,
                                                      reference: dict[str, Any]) -> None:
    assert cli(settings, env={"PHARMLOAD_TEST_KILL_AT": "staged"}).returncode == -signal.SIGKILL
    resumed = pipeline.run(settings)
    assert "hash" not in resumed.phases  # every screenshot hash came from the manifest
    assert resumed.images_stored == 0
    assert snapshot(dsn, settings.image_dir) == reference


@pytest.mark.parametrize("point", ["copying", "merging"])
def test_connection_terminated_by_server_is_retried(point: str, settings: Settings, dsn: str,
                                                    reference: dict[str, Any]) -> None:
    rep = pipeline.run(settings.replace(test_terminate_at=point, chunk_files=3))
    assert rep.attempts == 2
    assert snapshot(dsn, settings.image_dir) == reference
    assert query(dsn, "SELECT count(*) FROM load_runs") == [(1,)]


def test_retries_are_bounded_and_leave_the_database_unchanged(settings: Settings, dsn: str, scrape: Scrape) -> None:
    build_tree(scrape)
    rep_ok = pipeline.run(settings)
    before = snapshot(dsn, settings.image_dir)
    scrape.search("2025-08-09/PA/Belmar_09", document(ts="2025-08-09T10:00:00"))
    with pytest.raises(TransientDatabaseError) as exc:
        pipeline.run(settings.replace(test_terminate_at="copying", retries=1))
    assert "connection" in str(exc.value).lower()
    assert snapshot(dsn, settings.image_dir)["search_results"] == before["search_results"]
    assert rep_ok.status == "ok"


def test_permanent_error_fails_fast(settings: Settings, scrape: Scrape) -> None:
    build_tree(scrape)
    from psycopg.conninfo import make_conninfo

    start = time.monotonic()
    with pytest.raises(DatabaseError) as exc:
        pipeline.run(settings.replace(dsn=make_conninfo(settings.dsn, dbname="no_such_database_here")))
    assert "does not exist" in str(exc.value)
    assert time.monotonic() - start < 5


def test_corrupt_or_truncated_manifest_is_rebuilt(settings: Settings, dsn: str, reference: dict[str, Any]) -> None:
    pipeline.run(settings)
    (manifest,) = settings.manifest_dir.glob("*.parquet")
    for damage in (manifest.read_bytes()[: manifest.stat().st_size // 2], b"", b"\x00garbage", b"[1, 2]"):
        manifest.write_bytes(damage)
        rep = pipeline.run(settings)
        assert rep.warnings_by_kind.get("manifest_rebuilt") == 1
        assert rep.files_skipped == 0 and (rep.rows_inserted, rep.rows_updated) == (0, 0)
        assert snapshot(dsn, settings.image_dir) == reference


def test_a_rerun_with_nothing_to_parse_leaves_the_manifest_untouched(settings: Settings, dsn: str,
                                                                     reference: dict[str, Any]) -> None:
    first = pipeline.run(settings)
    (manifest,) = settings.manifest_dir.glob("*.parquet")
    before = (manifest.read_bytes(), manifest.stat().st_mtime_ns)
    rep = pipeline.run(settings)
    assert (rep.files_loaded, rep.files_skipped, rep.files_rejected) == (0, first.files_loaded, first.files_rejected)
    assert first.files_rejected > 0  # the broken files are reported again, from the manifest
    assert (manifest.read_bytes(), manifest.stat().st_mtime_ns) == before
    # The run is still recorded, and the manifest it left is still the database's own.
    assert query(dsn, "SELECT count(*) FROM load_runs WHERE status = 'ok'") == [(2,)]
    again = pipeline.run(settings)
    assert again.files_loaded == 0 and "manifest_stale" not in again.warnings_by_kind
    assert snapshot(dsn, settings.image_dir) == reference


def test_a_version_2_manifest_is_still_used(settings: Settings, dsn: str, reference: dict[str, Any]) -> None:
    """Written before rejects kept their reasons: its loaded files are skipped, its rejects read again."""
    first = pipeline.run(settings)
    (manifest,) = settings.manifest_dir.glob("*.parquet")
    header = orjson.loads(pl.read_parquet_metadata(manifest)["pharmload"])
    old = pl.read_parquet(manifest).drop("code", "detail")
    old.write_parquet(manifest, metadata={"pharmload": orjson.dumps({**header, "version": 2}).decode()})
    rep = pipeline.run(settings)
    assert "manifest_rebuilt" not in rep.warnings_by_kind
    assert (rep.files_skipped, rep.files_rejected, rep.files_loaded) == (first.files_loaded, first.files_rejected, 0)
    assert snapshot(dsn, settings.image_dir) == reference


def test_workers_renewed_during_a_load_give_the_same_end_state(settings: Settings, dsn: str,
                                                             reference: dict[str, Any],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[object] = []

    class Counted(ProcessPoolExecutor):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            started.append(self)

    monkeypatch.setattr(workers, "TASKS_PER_WORKER", 2)
    monkeypatch.setattr(futures, "ProcessPoolExecutor", Counted)  # workers.pool() imports it when called
    rep = pipeline.run(settings.replace(max_workers=2, chunk_files=1))
    assert len(started) >= 3  # one chunk per file, new workers every 4 chunks
    assert rep.files_found == rep.files_loaded + rep.files_rejected
    assert snapshot(dsn, settings.image_dir) == reference


def test_stale_manifest_for_a_reset_database_reloads_everything(settings: Settings, dsn: str,
                                                               reference: dict[str, Any]) -> None:
    pipeline.run(settings)
    query_all = "TRUNCATE search_results, load_runs, datasets, image_assets"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(query_all)
    rep = pipeline.run(settings)
    assert rep.files_skipped == 0
    assert snapshot(dsn, settings.image_dir) == reference


def test_deleted_stored_image_is_put_back(settings: Settings, dsn: str, reference: dict[str, Any]) -> None:
    pipeline.run(settings)
    victim = next(settings.image_dir.rglob("*.png"))
    victim.unlink()
    rep = pipeline.run(settings)
    assert rep.images_stored == 1
    assert snapshot(dsn, settings.image_dir) == reference


def test_incremental_load_parses_only_new_files_and_equals_a_full_load(
        settings: Settings, dsn: str, scrape: Scrape, admin_dsn: str, tmp_path: Path) -> None:
    build_tree(scrape, range(3, 5))
    first = pipeline.run(settings)
    build_tree(scrape, range(5, 6))  # a new day folder arrives
    second = pipeline.run(settings)
    new_files = 6
    assert second.files_skipped == first.files_found - 2  # the two old broken files count as rejected again
    assert second.files_loaded + second.files_rejected == new_files + 2
    full = settings.replace(dsn=dsn, full=True)
    before = snapshot(dsn, settings.image_dir)
    rep = pipeline.run(full)
    assert (rep.rows_inserted, rep.rows_updated) == (0, 0)
    assert snapshot(dsn, settings.image_dir) == before


def test_same_tag_waits_for_the_lock_or_refuses(settings: Settings, dsn: str, scrape: Scrape) -> None:
    build_tree(scrape)
    with psycopg.connect(dsn, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (LOCK_NAMESPACE, settings.tag))
        with pytest.raises(LockBusyError, match="another load into tag"):
            pipeline.run(settings.replace(lock_wait=False))
        other_tag = pipeline.run(settings.replace(tag="another-tag", lock_wait=False))
        assert other_tag.rows_inserted > 0
        done: list[Any] = []
        waiter = threading.Thread(target=lambda: done.append(pipeline.run(settings)))
        waiter.start()
        time.sleep(1.0)
        assert not done  # still waiting for the lock
        holder.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (LOCK_NAMESPACE, settings.tag))
        waiter.join(30)
    assert done and done[0].status == "ok"


def test_two_processes_same_tag_at_once_equal_one_load(settings: Settings, dsn: str,
                                                       reference: dict[str, Any]) -> None:
    args = [sys.executable, "-m", "loader", "load", "--backend", "postgresql", "--dsn", settings.dsn,
            "--states-dir", str(settings.states_dir), "--tag", settings.tag or "", "--image-dir",
            str(settings.image_dir), "--full"]
    procs = [subprocess.Popen([*args, "--manifest-dir", str(settings.manifest_dir / str(i))],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(2)]
    codes = [p.wait(120) for p in procs]
    assert codes == [1, 1]  # both loaded (with the tree's rejects), one after the other
    assert snapshot(dsn, settings.image_dir) == reference
    counts = query(dsn, "SELECT rows_inserted FROM load_runs ORDER BY id")
    assert sorted(c for (c,) in counts)[0] == 0  # the second changed nothing
