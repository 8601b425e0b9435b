"""The loader's start-up: when it starts its worker processes before its own imports
(headstart.py), and what the CLI does with the objects those imports leave."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

import pytest

from loader import heavy
from loader.run import headstart
from loader.settings import Settings


def _tree(root: Path, files: int) -> Path:
    for i in range(files):
        folder = root / f"2024-01-0{i % 3 + 1}" / ("FL" if i % 2 else "TX")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"search_{i}_parse.json").write_text("{}")
        (folder / f"search_{i}.png").write_bytes(b"png")
    return root


def test_counts_search_files_only_up_to_the_limit(tmp_path: Path) -> None:
    root = _tree(tmp_path / "scrape", 10)
    assert headstart.more_search_files_than(root, 9)
    assert not headstart.more_search_files_than(root, 10)  # ten screenshots are not search files


def test_does_not_count_through_a_symlinked_folder(tmp_path: Path) -> None:
    elsewhere = _tree(tmp_path / "elsewhere", 5)
    root = _tree(tmp_path / "scrape", 5)
    (root / "linked").symlink_to(elsewhere, target_is_directory=True)
    assert not headstart.more_search_files_than(root, 5)


def test_missing_folder_counts_nothing(tmp_path: Path) -> None:
    assert not headstart.more_search_files_than(tmp_path / "gone", 0)


def _settings(tmp_path: Path, **changes: object) -> Settings:
    base = Settings(states_dir=_tree(tmp_path / "scrape", 6), tag="t", chunk_files=4, max_workers=2,
                    manifest_dir=tmp_path / "manifests")
    return base.replace(**changes)


def test_no_head_start_where_workers_are_not_certain(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    assert not headstart.start_workers(settings.replace(chunk_files=6))   # one chunk: parsed in-process
    assert not headstart.start_workers(settings.replace(max_workers=1))
    settings.manifest_dir.mkdir()
    settings.manifest_file.write_bytes(b"")  # a re-run: the manifest decides how much is left
    assert not headstart.start_workers(settings)


def test_settings_name_one_manifest_per_tree_and_tag(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    assert settings.manifest_file.parent == tmp_path / "manifests"
    assert settings.manifest_file == settings.replace(states_dir=tmp_path / "scrape" / ".").manifest_file
    assert settings.manifest_file != settings.replace(tag="other").manifest_file


def test_head_start_for_a_first_load_of_more_than_a_chunk(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    assert headstart.start_workers(settings)
    settings.manifest_dir.mkdir()
    settings.manifest_file.write_bytes(b"")
    assert headstart.start_workers(settings.replace(full=True))  # --full parses everything again


def test_imports_are_frozen_and_the_collector_is_back_on_even_after_an_error() -> None:
    assert gc.isenabled()
    before = gc.get_freeze_count()
    try:
        with pytest.raises(RuntimeError), heavy.kept_for_good():
            assert not gc.isenabled()  # no collections while the libraries import
            imported = [[i] for i in range(1000)]  # stands for the objects an import leaves behind
            raise RuntimeError("an import failed")
        assert gc.isenabled()  # a long load still collects its own garbage
        assert gc.get_freeze_count() >= before + len(imported)
    finally:
        gc.unfreeze()


def test_the_loader_itself_never_imports_the_driver_on_a_load_into_postgresql() -> None:
    """The db process (db/process.py) imports psycopg while the loader imports polars; were any
    module on the loader's path to import it too, the loader would pay the ~0.17 s again."""
    code = ("import sys; import loader.cli, loader.run.unchanged, loader.run.pipeline, loader.run.stream; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('psycopg', 'psycopg_binary')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
