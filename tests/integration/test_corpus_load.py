"""The benchmark corpus's expectations hold against a real load, for both profiles.

The benchmark harness voids a run whose end state differs from what benchmarks/corpus.py says a
correct load ends with (its row keys and screenshots), so those expectations must be exact: here a
real pharmload load of each profile's tree, then of one more day, ends with exactly them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from benchmarks.corpus import PROFILES, CorpusSpec, CorpusStats, add_day, generate
from loader.run import pipeline
from loader.settings import Settings
from tests.conftest import query


def keys_in(dsn: str) -> list[tuple[str, str, str | None]]:
    return query(dsn, "SELECT search_state, search_name, license_number FROM search_results")


def hashes(root: Path, stats: CorpusStats) -> set[str]:
    return {hashlib.sha256((root / rel).read_bytes()).hexdigest() for rel in stats.image_files}


@pytest.mark.parametrize("profile", PROFILES)
def test_a_load_ends_exactly_as_the_corpus_expects(profile: str, settings: Settings, dsn: str, tmp_path: Path) -> None:
    root = tmp_path / "tree"
    spec = CorpusSpec(files=600, seed=9, image_bytes=400, days=3, profile=profile)
    stats = generate(root, spec)

    first = pipeline.run(settings.replace(states_dir=root))
    keys = keys_in(dsn)
    assert len(keys) == len(set(keys)) == len(stats.row_keys) == first.rows_inserted
    assert set(keys) == stats.row_keys
    assert first.rejects_by_reason == {k: v for k, v in stats.broken_by_reason.items() if v}
    assert {h for (h,) in query(dsn, "SELECT content_hash FROM image_assets")} == hashes(root, stats)

    day = add_day(root, spec, spec.days)
    second = pipeline.run(settings.replace(states_dir=root))
    keys = keys_in(dsn)
    assert len(keys) == len(set(keys)) == len(stats.row_keys | day.row_keys)
    assert set(keys) == stats.row_keys | day.row_keys
    assert second.rows_inserted == len(day.row_keys - stats.row_keys)
    assert second.files_loaded == day.valid_files
    images = {h for (h,) in query(dsn, "SELECT content_hash FROM image_assets")}
    assert images == hashes(root, stats) | hashes(root, day)
