"""The screenshot hashes a load records for its manifest wait in a temporary folder until the
manifest is saved (not in memory: a quarter of a million-file load's peak): every one reaches the
manifest, the folder goes with the load (or with a later load, when it was killed outright), and a
folder that cannot be written fails the load cleanly."""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
import time
from pathlib import Path

import polars as pl
import pytest

from benchmarks.corpus import CorpusSpec, generate
from loader.errors import LoadError, TransientDatabaseError
from loader.run import manifest, pipeline
from loader.settings import Settings
from tests.conftest import query


@pytest.fixture
def spill(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty folder that stands for TMPDIR during the test."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_every_hash_reaches_the_manifest_and_the_spill_folder_goes(settings: Settings, tmp_path: Path,
                                                                     spill: Path) -> None:
    root = tmp_path / "tree"
    stats = generate(root, CorpusSpec(files=300, seed=7, image_bytes=1500, days=2, profile="realistic"))
    pooled = settings.replace(states_dir=root, max_workers=2, chunk_files=30)

    pipeline.run(pooled)

    assert [p.name for p in spill.iterdir() if p.name.startswith("pharmload")] == []
    images = pl.read_parquet(pooled.manifest_file).filter(pl.col("kind") == "image")
    recorded = dict(zip(images["rel"], images["content_hash"], strict=True))
    assert recorded == {rel: hashlib.sha256((root / rel).read_bytes()).hexdigest() for rel in stats.image_files}


def test_a_spill_folder_that_cannot_be_written_fails_the_load_and_changes_nothing(
        settings: Settings, dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "tree"
    generate(root, CorpusSpec(files=120, seed=8, image_bytes=1500, profile="realistic"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-folder"))

    with pytest.raises(LoadError, match=r"cannot keep this load's screenshot hashes in .*no-such-folder.*"
                                        r"nothing was committed"):
        pipeline.run(settings.replace(states_dir=root))

    # The load's one transaction made the schema too: rolled back, the database has not even that.
    assert query(dsn, "SELECT to_regclass('search_results')") == [(None,)]


def _dead_pid() -> int:
    """The PID of a process that has exited (and been reaped)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_a_load_removes_the_spill_folders_of_loads_killed_outright(settings: Settings, tmp_path: Path,
                                                                   spill: Path) -> None:
    root = tmp_path / "tree"
    generate(root, CorpusSpec(files=120, seed=9, image_bytes=1500, profile="realistic"))
    dead, hour_ago = _dead_pid(), time.time() - 2 * manifest.STALE_SPILL
    left = {name: spill / name for name in (
        f"pharmload-hashes-{dead}-killed",    # its load is gone, and it is old: removed
        f"pharmload-hashes-{dead}-fresh",     # gone, but written to moments ago (another PID namespace?)
        f"pharmload-hashes-{os.getpid()}-x",  # its process runs
        "pharmload-hashes-k3x_9q2a",          # an older version's name, without a PID: old, removed
        "pharmload-hashes-not-a-pid",         # not named by a process
        "someone-elses-folder")}
    for name, folder in left.items():
        folder.mkdir()
        (folder / "000000.parquet").write_bytes(b"x")
        if not name.endswith("fresh"):
            os.utime(folder, (hour_ago, hour_ago))

    pipeline.run(settings.replace(states_dir=root))

    assert sorted(p.name for p in spill.iterdir()) == sorted(set(left) - {f"pharmload-hashes-{dead}-killed",
                                                                         "pharmload-hashes-k3x_9q2a"})


def test_a_failed_load_removes_its_spill_folder_before_it_returns(settings: Settings, tmp_path: Path,
                                                                  spill: Path) -> None:
    # The CLI leaves by os._exit, where no finalizer runs, and the failure's traceback keeps the
    # manifest alive until then: the folder must be gone while the error is still in hand.
    root = tmp_path / "tree"
    generate(root, CorpusSpec(files=150, seed=10, image_bytes=1500, profile="realistic"))

    with pytest.raises(TransientDatabaseError) as failure:
        pipeline.run(settings.replace(states_dir=root, test_terminate_at="merging", retries=1))

    assert failure.value.__traceback__ is not None
    assert [p.name for p in spill.iterdir()] == []
