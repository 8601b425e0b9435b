"""Screenshots stored by the worker processes, from the bytes they hashed: every one whole, once,
under its own hash, counted exactly, with nothing else left in the store; as a load run in-process
leaves it, whether its hashing threads store them or the store thread copies them."""

from __future__ import annotations

import hashlib
from pathlib import Path

from benchmarks.corpus import CorpusSpec, generate
from loader.run import pipeline
from loader.settings import Settings
from loader.stores.local import storage_path
from tests.conftest import query


def store_contents(root: Path) -> dict[str, str]:
    """Every file below the store's root (dot files and folders' strays included): path -> SHA-256."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.rglob("*") if not p.is_dir()}


def test_worker_processes_store_each_screenshot_whole_and_once(settings: Settings, dsn: str, tmp_path: Path) -> None:
    root = tmp_path / "tree"
    stats = generate(root, CorpusSpec(files=600, seed=5, image_bytes=3000, days=3, profile="realistic"))
    shots = {hashlib.sha256((root / rel).read_bytes()).hexdigest() for rel in stats.image_files}
    pooled = settings.replace(states_dir=root, max_workers=2, chunk_files=40)

    first = pipeline.run(pooled)
    stored = store_contents(pooled.image_dir)
    assert stored == {storage_path(h): h for h in shots}  # named by their bytes; no temporary file left
    assert first.images_stored == len(shots) == first.images_referenced
    assert "store" not in first.phases  # the workers stored them all: the store thread had nothing to copy
    assert {h for (h,) in query(dsn, "SELECT content_hash FROM image_assets")} == shots

    # Another tag, the same screenshots: all found in the store, none written or counted again.
    again = pipeline.run(pooled.replace(tag="other-tag"))
    assert again.images_stored == 0 and again.images_referenced == len(shots)
    assert store_contents(pooled.image_dir) == stored

    # In-process with one worker, the store thread copies them: the same store, byte for byte.
    inline = pipeline.run(settings.replace(states_dir=root, tag="inline", image_dir=tmp_path / "inline-images"))
    assert inline.images_stored == len(shots) and "store" in inline.phases
    assert store_contents(tmp_path / "inline-images") == stored

    # In-process with two (one chunk: no pool), the two hashing threads store what they hash.
    threads = pipeline.run(settings.replace(states_dir=root, tag="threads", image_dir=tmp_path / "thread-images",
                                            max_workers=2, chunk_files=10_000))
    assert threads.images_stored == len(shots) and "store" not in threads.phases
    assert store_contents(tmp_path / "thread-images") == stored
