"""images.candidates, describe and describe_files on real files, no database: paths, limits, hashes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from loader.scan import images
from loader.scan.images import BLOCK
from loader.stores.local import LocalStore, storage_path
from tests.scrape import png


@pytest.mark.parametrize("filler", [b"", b"x" * 100, b"y" * (BLOCK - 33), b"z" * (3 * BLOCK + 7)])
def test_describe_hashes_every_byte_in_one_or_many_reads(tmp_path: Path, filler: bytes) -> None:
    data = png(640, 480, filler)
    path = tmp_path / "a.png"
    path.write_bytes(data)
    roots = images.Roots((str(tmp_path),), 1)
    size, _mtime, digest, total, kind, width, height, error, stored = images.describe("a.png", str(path), roots)
    assert (size, total, digest) == (len(data), len(data), hashlib.sha256(data).hexdigest())
    assert (kind, width, height, error, stored) == ("image/png", 640, 480, None, None)


@pytest.mark.parametrize("filler", [b"x" * 100, b"y" * (BLOCK - 33), b"z" * (3 * BLOCK + 7)])
def test_describe_stores_a_screenshot_read_whole_from_the_bytes_it_hashed(tmp_path: Path, filler: bytes) -> None:
    data = png(640, 480, filler)
    (tmp_path / "a.png").write_bytes(data)
    store = LocalStore(tmp_path / "store")
    roots = images.Roots((str(tmp_path),), 1, sink=store.sink(str(tmp_path)))
    digest = hashlib.sha256(data).hexdigest()
    first = images.describe("a.png", str(tmp_path / "a.png"), roots)
    again = images.describe("a.png", str(tmp_path / "a.png"), roots)
    stored = tmp_path / "store" / storage_path(digest)
    if len(data) <= BLOCK:  # read whole: stored by the worker, once
        assert (first[2], first[-1], again[-1]) == (digest, True, False)
        assert stored.read_bytes() == data
    else:  # larger than one read: left to the store lane
        assert (first[2], first[-1]) == (digest, None)
        assert not stored.exists()
    assert [p.name for p in (tmp_path / "store").rglob("*") if p.is_file()] == ([stored.name] if stored.exists()
                                                                               else [])


def test_describe_never_stores_a_withheld_screenshot(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(png())
    roots = images.Roots((str(tmp_path),), 1, sink=LocalStore(tmp_path / "store").sink(str(tmp_path)),
                         withheld=frozenset({"a.png"}))
    assert images.describe("a.png", str(tmp_path / "a.png"), roots)[-1] is None
    assert not (tmp_path / "store").exists()


def test_describe_refuses_a_screenshot_over_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(png(filler=b"w" * 5000))
    roots = images.Roots((str(tmp_path),), 1, max_bytes=5000)
    facts = images.describe("a.png", str(path), roots)
    assert facts[:7] == (None,) * 7
    assert facts[7:] == ("larger than the 5000 byte limit", None)


@pytest.mark.parametrize(("source", "depth", "expected"), [
    ("/home/scraper/data/2025-08-03/PA/a.png", 3, ["2025-08-03/PA/a.png", "PA/a.png", "a.png"]),
    ("C:\\scrapes\\2025-08-03\\PA\\a.png", 2, ["PA/a.png", "a.png"]),
    ("data/../x/../2025/./PA//a.png", 5, ["2025/PA/a.png", "PA/a.png", "a.png"]),
    ("../../etc/passwd", 3, ["etc/passwd", "passwd"]),
    ("a/b/..", 3, []),
    ("..", 3, []),
    ("", 3, []),
])
def test_candidates_are_the_tails_without_a_parent_step(source: str, depth: int, expected: list[str]) -> None:
    assert images.candidates(source, "PA/a_parse.json", depth) == expected


def test_candidates_without_a_source_are_the_stem() -> None:
    assert images.candidates(None, "2025-08-03/PA/a_parse.json", 3) == ["2025-08-03/PA/a.png"]
    assert images.candidates(None, "2025-08-03/PA/a.json", 3) == []


def test_describe_files_with_threads_gives_what_one_thread_gives(tmp_path: Path) -> None:
    n = 4 * images.MIN_PER_THREAD + 3
    for i in range(n):
        (tmp_path / f"s{i:03d}.png").write_bytes(png(100 + i, 50, filler=bytes([i % 256]) * (i * 97)))
    sources = [f"/scrapes/s{i:03d}.png" for i in range(n)] + ["/scrapes/s007.png", "/scrapes/gone.png", None]
    rels = [f"s{i:03d}_parse.json" for i in range(n)] + ["again_parse.json", "gone_parse.json", "s001_parse.json"]
    ids = list(range(len(sources)))
    roots = images.Roots((str(tmp_path),), 1)
    one, warned_one = images.describe_files(ids, sources, rels, roots, threads=1)
    many, warned_many = images.describe_files(ids, sources, rels, roots, threads=3)
    assert one.equals(many) and warned_one == warned_many
    assert one["content_hash"].to_list()[:n] == [
        hashlib.sha256((tmp_path / f"s{i:03d}.png").read_bytes()).hexdigest() for i in range(n)]
    assert one.row(n, named=True)["content_hash"] == one.row(7, named=True)["content_hash"]
    assert one.row(n + 1, named=True)["image_rel"] is None
    assert one.row(n + 2, named=True)["image_rel"] == "s001.png"
    assert [w[0] for w in warned_one] == ["gone_parse.json"]
