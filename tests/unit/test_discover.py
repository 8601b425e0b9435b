"""discover.plan and images.resolve (how a screenshot is found) on folders in tmp_path, no database."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import polars as pl
import pytest

from loader.scan import discover, images
from loader.stores import local


def _touch(root: Path, *rels: str) -> None:
    for rel in rels:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rel.encode())


def _resolve(root: Path, *refs: tuple[str, str | None], extra: tuple[Path, ...] = ()) -> list[str | None]:
    """What each (json rel, source_image_file) resolves to, as a path relative to its root."""
    plan = discover.plan(root, extra)
    roots = images.Roots(plan.roots, plan.depth)
    out = [images.resolve(source, rel, roots) for rel, source in refs]
    return [found[0] if found else None for found in out]


def test_plan_finds_parse_json_at_any_depth_in_path_order(tmp_path: Path) -> None:
    _touch(tmp_path, "top_parse.json", "2025-08-04/PA/Belmar_01_parse.json", "2025-08-03/FL/Belmar_01_parse.json",
           "a/b/c/d/deep_parse.json", "2025-08-03/FL/Belmar_01.png", "notes.json", "x_parse.json.bak",
           "2025-08-03/FL/Belmar_table.png")
    plan = discover.plan(tmp_path)
    assert plan.jsons["rel"].to_list() == ["2025-08-03/FL/Belmar_01_parse.json", "2025-08-04/PA/Belmar_01_parse.json",
                                           "a/b/c/d/deep_parse.json", "top_parse.json"]
    assert plan.jsons["file_id"].to_list() == [0, 1, 2, 3]
    assert plan.paths(plan.jsons) == [str(tmp_path.resolve() / r) for r in plan.jsons["rel"]]
    assert (plan.other_files, plan.depth) == (4, 3)  # two PNGs, notes.json, the .bak; deepest: day/state/file
    assert plan.refused == ()


def test_plan_refuses_a_search_file_symlinked_outside_the_root(tmp_path: Path) -> None:
    root, outside = tmp_path / "scrape", tmp_path / "outside"
    _touch(outside, "evil_parse.json")
    _touch(root, "PA/Belmar_01_parse.json", "PA/inside_parse.json")
    os.symlink(outside / "evil_parse.json", root / "PA/Evil_parse.json")
    os.symlink(root / "PA/inside_parse.json", root / "PA/alias_parse.json")
    plan = discover.plan(root)
    assert plan.jsons["rel"].to_list() == ["PA/Belmar_01_parse.json", "PA/alias_parse.json", "PA/inside_parse.json"]
    assert [(rel, code) for rel, code, _ in plan.refused] == [("PA/Evil_parse.json", "outside_root")]


def test_plan_walks_no_symlinked_folder_and_fingerprints_what_it_opens(tmp_path: Path) -> None:
    root = tmp_path / "scrape"
    _touch(root, "2025-08-03/FL/A_parse.json", "2025-08-03/FL/sub/B_parse.json")
    os.symlink(root / "2025-08-03/FL", root / "2025-08-03/FL-again")  # inside the root, still not walked
    os.symlink(root / "2025-08-03/FL/A_parse.json", root / "2025-08-03/FL/sub/alias_parse.json")
    plan = discover.plan(root)
    rows = plan.jsons.select("rel", "link", "size", "mtime_ns").rows()
    target = str(root.resolve() / "2025-08-03/FL/A_parse.json")
    assert [(rel, link) for rel, link, _, _ in rows] == [
        ("2025-08-03/FL/A_parse.json", None), ("2025-08-03/FL/sub/B_parse.json", None),
        ("2025-08-03/FL/sub/alias_parse.json", target)]
    for (rel, _, size, mtime_ns), path in zip(rows, plan.paths(plan.jsons), strict=True):
        st = os.stat(path)  # a symlinked search file is fingerprinted by the file it leads to
        assert (size, mtime_ns) == (st.st_size, st.st_mtime_ns), rel
    assert plan.other_files == 1  # the folder symlink, counted as a file that is not a search file


def test_plan_single_file(tmp_path: Path) -> None:
    _touch(tmp_path, "PA/a_parse.json", "PA/b_parse.json")
    plan = discover.plan(tmp_path, single_file=tmp_path / "PA/b_parse.json")
    assert plan.jsons["rel"].to_list() == ["PA/b_parse.json"]


@pytest.mark.parametrize("source", [
    "data/2025-08-04/PA/Belmar_01.png",
    "/home/scraper/pharmchecker/data/2025-08-04/PA/Belmar_01.png",
    "C:\\scraper\\data\\2025-08-04\\PA\\Belmar_01.png",
    "./data//2025-08-04/./PA/Belmar_01.png",
])
def test_resolve_longest_trailing_match(tmp_path: Path, source: str) -> None:
    _touch(tmp_path, "2025-08-03/PA/Belmar_01.png", "2025-08-04/PA/Belmar_01.png", "PA/Belmar_01.png",
           "Belmar_01.png")
    assert _resolve(tmp_path, ("2025-08-04/PA/Belmar_01_parse.json", source)) == ["2025-08-04/PA/Belmar_01.png"]


def test_resolve_shorter_trailing_match_when_the_day_folder_is_the_root(tmp_path: Path) -> None:
    _touch(tmp_path, "PA/Belmar_01.png", "FL/Belmar_01.png")
    assert _resolve(tmp_path, ("PA/Belmar_01_parse.json", "data/2025-08-03/PA/Belmar_01.png")) == [
        "PA/Belmar_01.png"]


def test_resolve_name_differs_from_the_json(tmp_path: Path) -> None:
    _touch(tmp_path, "2025-08-03/PA/Beaker_01.png", "2025-08-03/PA/Beaker_no_results.png")
    assert _resolve(tmp_path, ("2025-08-03/PA/Beaker_no_results_parse.json", "data/2025-08-03/PA/Beaker_01.png")
                    ) == ["2025-08-03/PA/Beaker_01.png"]


def test_resolve_stem_fallback_only_when_the_field_is_absent(tmp_path: Path) -> None:
    _touch(tmp_path, "2025-08-03/PA/Belmar_01.png", "Belmar_01.png", "2025-08-03/FL/Belmar_01.png")
    assert _resolve(tmp_path, ("2025-08-03/PA/Belmar_01_parse.json", None),
                    ("2025-08-03/XX/Belmar_01_parse.json", None)) == ["2025-08-03/PA/Belmar_01.png", None]


def test_resolve_nothing_matches(tmp_path: Path) -> None:
    _touch(tmp_path, "PA/Belmar_01.png")
    assert _resolve(tmp_path, ("PA/Belmar_01_parse.json", "data/2025-08-03/PA/Other.png")) == [None]


@pytest.mark.parametrize("source", ["../secret.png", "../../secret.png", "a/../secret.png", "..\\secret.png"])
def test_resolve_never_follows_a_parent_reference(tmp_path: Path, source: str) -> None:
    root = tmp_path / "a" / "b" / "scrape"
    _touch(tmp_path, "secret.png", "a/secret.png", "a/b/secret.png")
    _touch(root, "PA/Belmar_01_parse.json")
    assert _resolve(root, ("PA/Belmar_01_parse.json", source)) == [None]


def test_resolve_never_follows_a_symlink_outside_the_roots(tmp_path: Path) -> None:
    root, outside = tmp_path / "scrape", tmp_path / "outside"
    _touch(outside, "secret.png")
    _touch(root, "PA/inside.png")
    os.symlink(outside / "secret.png", root / "PA/Belmar_01.png")
    os.symlink(root / "PA/inside.png", root / "PA/alias.png")
    assert _resolve(root, ("PA/Belmar_01_parse.json", None), ("PA/x_parse.json", "PA/alias.png")) == [
        None, "PA/alias.png"]


def test_resolve_in_configured_image_roots(tmp_path: Path) -> None:
    root, extra = tmp_path / "scrape", tmp_path / "shots"
    _touch(root, "PA/Belmar_01_parse.json")
    _touch(extra, "2025-08-03/PA/Belmar_01.png")
    assert _resolve(root, ("PA/Belmar_01_parse.json", "data/2025-08-03/PA/Belmar_01.png"), extra=(extra,)) == [
        "2025-08-03/PA/Belmar_01.png"]


def test_resolve_tries_no_more_parts_than_the_deepest_file(tmp_path: Path) -> None:
    _touch(tmp_path, "PA/x.png")
    deep = "/".join(["d"] * 40_000) + "/PA/x.png"
    assert images.candidates(deep, "PA/x_parse.json", discover.plan(tmp_path).depth) == ["PA/x.png", "x.png"]
    assert _resolve(tmp_path, ("PA/x_parse.json", deep)) == ["PA/x.png"]


def test_resolve_many_files_keep_their_own_match(tmp_path: Path) -> None:
    _touch(tmp_path, "d1/PA/x.png", "d2/PA/x.png", "d1/PA/y.png")
    assert _resolve(tmp_path, ("d2/PA/x_parse.json", "data/d2/PA/x.png"), ("d1/PA/x_parse.json", "data/d1/PA/x.png"),
                    ("d1/PA/y_parse.json", None), ("d1/PA/z_parse.json", None)) == [
        "d2/PA/x.png", "d1/PA/x.png", "d1/PA/y.png", None]


def test_resolve_never_follows_a_folder_symlinked_outside_the_roots(tmp_path: Path) -> None:
    root, outside = tmp_path / "scrape", tmp_path / "outside"
    _touch(outside, "NY/Belmar_01.png")
    _touch(root, "PA/Belmar_01.png")
    os.symlink(outside / "NY", root / "NY")
    plan = discover.plan(root)
    roots = images.Roots(plan.roots, plan.depth)
    folders: dict[str, bool] = {}  # shared by every file of a chunk, as describe_files shares it
    found = [images.resolve(None, rel, roots, folders) for rel in
             ("NY/Belmar_01_parse.json", "PA/Belmar_01_parse.json", "NY/Belmar_01_parse.json")]
    assert [f[0] if f else None for f in found] == [None, "PA/Belmar_01.png", None]


def test_storage_paths_of_a_column_match_storage_path() -> None:
    hashes = [hashlib.sha256(bytes([i])).hexdigest() for i in range(5)]
    paths = pl.DataFrame({"h": hashes}).select(images.storage_paths(pl.col("h")).alias("p"))["p"].to_list()
    assert paths == [local.storage_path(h) for h in hashes]
