"""discover.plan and discover.resolve_images on folders in tmp_path, no database."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import pytest

from loader import discover


def _touch(root: Path, *rels: str) -> None:
    for rel in rels:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rel.encode())


def _files(*refs: tuple[str, str | None]) -> pl.DataFrame:
    return pl.DataFrame({"file_id": list(range(len(refs))), "rel": [r for r, _ in refs],
                         "source_image": [s for _, s in refs]},
                        schema={"file_id": pl.Int64, "rel": pl.String, "source_image": pl.String})


def _images(*rels: str) -> pl.DataFrame:
    return pl.DataFrame({"rel": list(rels), "path": [f"/x/{r}" for r in rels]},
                        schema={"rel": pl.String, "path": pl.String})


def _resolve(files: pl.DataFrame, images: pl.DataFrame) -> list[tuple[str | None, bool]]:
    out = discover.resolve_images(files, images).sort("file_id")
    return list(zip(out["image_rel"].to_list(), out["image_missing"].to_list(), strict=True))


def test_plan_finds_parse_json_at_any_depth_in_path_order(tmp_path: Path) -> None:
    _touch(tmp_path, "top_parse.json", "2025-08-04/PA/Belmar_01_parse.json", "2025-08-03/FL/Belmar_01_parse.json",
           "a/b/c/d/deep_parse.json", "2025-08-03/FL/Belmar_01.png", "notes.json", "x_parse.json.bak",
           "2025-08-03/FL/Belmar_table.png")
    plan = discover.plan(tmp_path)
    assert plan.jsons["rel"].to_list() == ["2025-08-03/FL/Belmar_01_parse.json", "2025-08-04/PA/Belmar_01_parse.json",
                                           "a/b/c/d/deep_parse.json", "top_parse.json"]
    assert plan.jsons["file_id"].to_list() == [0, 1, 2, 3]
    assert plan.jsons["path"].to_list() == [str(tmp_path.resolve() / r) for r in plan.jsons["rel"]]
    assert sorted(plan.images["rel"].to_list()) == ["2025-08-03/FL/Belmar_01.png", "2025-08-03/FL/Belmar_table.png",
                                                    "notes.json", "x_parse.json.bak"]
    assert plan.refused == ()


def test_plan_does_not_index_a_symlink_pointing_outside_the_root(tmp_path: Path) -> None:
    root, outside = tmp_path / "scrape", tmp_path / "outside"
    _touch(outside, "secret.png", "evil_parse.json")
    _touch(root, "PA/inside.png", "PA/Belmar_01_parse.json")
    os.symlink(outside / "secret.png", root / "PA/Belmar_01.png")
    os.symlink(outside / "evil_parse.json", root / "PA/Evil_parse.json")
    os.symlink(root / "PA/inside.png", root / "PA/alias.png")
    plan = discover.plan(root)
    assert sorted(plan.images["rel"].to_list()) == ["PA/alias.png", "PA/inside.png"]
    assert "PA/Belmar_01.png" not in plan.images["rel"].to_list()
    assert plan.jsons["rel"].to_list() == ["PA/Belmar_01_parse.json"]
    assert [(rel, code) for rel, code, _ in plan.refused] == [("PA/Evil_parse.json", "outside_root")]


def test_plan_indexes_configured_image_roots(tmp_path: Path) -> None:
    root, extra = tmp_path / "scrape", tmp_path / "shots"
    _touch(root, "PA/Belmar_01_parse.json")
    _touch(extra, "2025-08-03/PA/Belmar_01.png")
    plan = discover.plan(root, (extra,))
    assert plan.images["rel"].to_list() == ["2025-08-03/PA/Belmar_01.png"]


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
def test_resolve_images_longest_trailing_match(source: str) -> None:
    images = _images("2025-08-03/PA/Belmar_01.png", "2025-08-04/PA/Belmar_01.png", "PA/Belmar_01.png",
                     "Belmar_01.png")
    assert _resolve(_files(("2025-08-04/PA/Belmar_01_parse.json", source)), images) == [
        ("2025-08-04/PA/Belmar_01.png", False)]


def test_resolve_images_shorter_trailing_match_when_the_day_folder_is_the_root() -> None:
    images = _images("PA/Belmar_01.png", "FL/Belmar_01.png")
    assert _resolve(_files(("PA/Belmar_01_parse.json", "data/2025-08-03/PA/Belmar_01.png")), images) == [
        ("PA/Belmar_01.png", False)]


def test_resolve_images_name_differs_from_the_json() -> None:
    images = _images("2025-08-03/PA/Beaker_01.png", "2025-08-03/PA/Beaker_no_results.png")
    files = _files(("2025-08-03/PA/Beaker_no_results_parse.json", "data/2025-08-03/PA/Beaker_01.png"))
    assert _resolve(files, images) == [("2025-08-03/PA/Beaker_01.png", False)]


def test_resolve_images_stem_fallback_only_when_the_field_is_absent() -> None:
    images = _images("2025-08-03/PA/Belmar_01.png", "Belmar_01.png", "2025-08-03/FL/Belmar_01.png")
    files = _files(("2025-08-03/PA/Belmar_01_parse.json", None), ("2025-08-03/XX/Belmar_01_parse.json", None))
    assert _resolve(files, images) == [("2025-08-03/PA/Belmar_01.png", False), (None, True)]


def test_resolve_images_nothing_matches() -> None:
    files = _files(("PA/Belmar_01_parse.json", "data/2025-08-03/PA/Other.png"))
    assert _resolve(files, _images("PA/Belmar_01.png")) == [(None, True)]


@pytest.mark.parametrize("source", ["../secret.png", "../../secret.png", "a/../secret.png", "..\\secret.png"])
def test_resolve_images_never_matches_a_parent_reference(source: str) -> None:
    images = _images("../secret.png", "../../secret.png", "a/../secret.png")
    assert _resolve(_files(("PA/Belmar_01_parse.json", source)), images) == [(None, True)]


def test_resolve_images_many_files_keep_their_own_match() -> None:
    images = _images("d1/PA/x.png", "d2/PA/x.png", "d1/PA/y.png")
    files = _files(("d2/PA/x_parse.json", "data/d2/PA/x.png"), ("d1/PA/x_parse.json", "data/d1/PA/x.png"),
                   ("d1/PA/y_parse.json", None), ("d1/PA/z_parse.json", None))
    assert _resolve(files, images) == [("d2/PA/x.png", False), ("d1/PA/x.png", False), ("d1/PA/y.png", False),
                                       (None, True)]
