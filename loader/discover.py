"""Plan a load: every `*_parse.json` below the states folder, fingerprinted, in path order.

A scrape folder is untrusted input: a search file whose symlink leads outside the states folder
(and configured image roots) is refused unread. Screenshots are not indexed here: the workers
resolve each one with a few stat calls (images.resolve), so a million screenshots cost the plan
nothing but the depth of the deepest one, which bounds how many trailing parts are tried.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from loader.headstart import JSON_SUFFIX


@dataclass(frozen=True)
class Plan:
    """The files of one load.

    `jsons` has one row per search file, in the order that breaks ties (path order): columns
    file_id, rel, link (a symlink's target, else null), size, mtime_ns; `paths()` gives the files
    to open (kept out of the frame: a million full paths would cost ~100 MB for nothing).
    `refused` holds search files rejected without being read, as (rel, reason, detail): symlinks
    leading outside the allowed roots, and names that are not UTF-8 (PostgreSQL and the reports
    could not hold them). `roots` are the folders screenshots may be found in (the states folder
    first), `depth` the most path parts any file below them has, and `other_files` how many files
    besides search files there are.
    """

    root: Path
    jsons: pl.DataFrame
    refused: tuple[tuple[str, str, str], ...]
    roots: tuple[str, ...]
    depth: int
    other_files: int

    def paths(self, part: pl.DataFrame) -> list[str]:
        """The path to open for each search file of part (a slice of jsons)."""
        prefix = str(self.root) + os.sep
        return [link or prefix + rel for rel, link in zip(part["rel"], part["link"], strict=True)]


BATCH = 100_000  # files the walk keeps as Python objects before it turns them into columns


def inside(path: str, roots: tuple[str, ...]) -> bool:
    """Whether path (resolved) lies in one of the roots."""
    return any(path == r or path.startswith(r + os.sep) for r in roots)


class _Columns:
    """What the walk finds, kept as columns: a million files must not cost a million tuples."""

    def __init__(self) -> None:
        self.rel: list[str] = []
        self.link: list[str | None] = []  # the resolved target of a symlink, else None
        self.size: list[int] = []
        self.mtime_ns: list[int] = []
        self.depth = 0
        self.others = 0
        self.parts: list[pl.DataFrame] = []

    def add(self, rel: str, link: str | None, size: int, mtime_ns: int) -> None:
        self.rel.append(rel)
        self.link.append(link)
        self.size.append(size)
        self.mtime_ns.append(mtime_ns)
        if len(self.rel) >= BATCH:  # Python objects cost ~5x their column: move them into one
            self.parts.append(self._batch())

    def _batch(self) -> pl.DataFrame:
        cols = {"rel": self.rel, "link": self.link, "size": self.size, "mtime_ns": self.mtime_ns}
        schema = {"rel": pl.String, "link": pl.String, "size": pl.Int64, "mtime_ns": pl.Int64}
        batch = pl.DataFrame(cols, schema=schema)
        self.rel, self.link, self.size, self.mtime_ns = [], [], [], []
        return batch

    def frame(self) -> pl.DataFrame:
        return pl.concat([*self.parts, self._batch()])


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # os.scandir hands undecodable bytes back as surrogate escapes
        return False
    return True


def _walk(root: Path, roots: tuple[str, ...]) -> tuple[_Columns, list[tuple[str, str, str]]]:
    """Every search file below root (symlinks only when they stay inside the roots), the depth of
    every other file, and the search files refused unread.

    Each folder is opened relative to root, and its entries are stat'ed relative to that folder
    (fstatat): resolving one name instead of the whole path makes the walk ~11% faster (0.10 ->
    0.09 s at 20,000 search files, 0.76 -> 0.67 s at 100,000; a re-run is mostly this walk). A
    folder swapped for a symlink after it was listed is not followed (O_NOFOLLOW). Only one
    folder is open at a time, however wide the tree."""
    found = _Columns()
    refused: list[tuple[str, str, str]] = []
    top = str(root)
    try:
        top_fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return found, refused
    stack = [("", 1)]
    try:
        while stack:
            prefix, depth = stack.pop()
            try:
                fd = os.open(prefix or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=top_fd)
            except OSError:
                continue
            try:
                _walk_folder(fd, top, prefix, depth, roots, found, refused, stack)
            finally:
                os.close(fd)
    finally:
        os.close(top_fd)
    return found, refused


def _walk_folder(fd: int, top: str, prefix: str, depth: int, roots: tuple[str, ...], found: _Columns,
                 refused: list[tuple[str, str, str]], stack: list[tuple[str, int]]) -> None:
    """One folder of _walk, open as fd: its search files into found, its sub-folders onto stack."""
    try:
        entries = list(os.scandir(fd))
    except OSError:
        return
    for entry in entries:
        rel = prefix + entry.name
        if not _utf8(rel):
            shown = rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
            if shown.endswith(JSON_SUFFIX):
                refused.append((shown, "unreadable", "file name is not UTF-8; not read"))
            continue
        if entry.is_dir(follow_symlinks=False):
            stack.append((rel + "/", depth + 1))
            continue
        if not rel.endswith(JSON_SUFFIX):
            found.others += 1
            found.depth = max(found.depth, depth)
            continue
        link = None
        if entry.is_symlink():
            link = os.path.realpath(os.path.join(top, rel))
            if not inside(link, roots):
                refused.append((rel, "outside_root", "symlink points outside the states folder; not read"))
                continue
        try:
            if not entry.is_file():
                continue
            st = entry.stat()
        except OSError:
            continue
        found.add(rel, link, st.st_size, st.st_mtime_ns)


def plan(states_dir: Path, image_roots: tuple[Path, ...] = (), single_file: Path | None = None) -> Plan:
    """Walk the states folder (and image roots) once; sort search files by path."""
    root = states_dir.resolve()
    roots = (str(root), *(str(r.resolve()) for r in image_roots))
    found, refused = _walk(root, roots)
    depth, others = found.depth, found.others
    jsons = found.frame().sort("rel")
    del found
    for extra in roots[1:]:
        more, _ = _walk(Path(extra), roots)
        depth, others = max(depth, more.depth), others + more.others
    if single_file is not None:
        wanted = str(single_file.resolve())
        paths = pl.coalesce("link", pl.lit(str(root) + os.sep) + pl.col("rel"))
        jsons = jsons.filter(paths.map_elements(os.path.realpath, return_dtype=pl.String) == wanted)
        refused = []
    json_frame = jsons.with_row_index("file_id").with_columns(pl.col("file_id").cast(pl.Int64))
    return Plan(root=root, jsons=json_frame, refused=tuple(sorted(refused)), roots=roots, depth=depth,
                other_files=others)
