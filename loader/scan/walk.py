"""Walk a states folder for its search files, without polars.

The plan (discover.py) turns what the walk finds into columns; an unchanged re-run (unchanged.py)
fingerprints it before polars is even imported, which is most of such a run's time.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Iterable
from pathlib import Path

JSON_SUFFIX = "_parse.json"  # what makes a file a search file
BATCH = 100_000  # files the walk keeps as Python objects before it turns them into columns


def inside(path: str, roots: tuple[str, ...]) -> bool:
    """Whether path (resolved) lies in one of the roots."""
    return any(path == r or path.startswith(r + os.sep) for r in roots)


class Found:
    """What the walk finds, kept as columns: a million files must not cost a million tuples.

    Every BATCH files, `flush` gets the batch (see `take`): Python objects cost ~5x their column,
    so the plan moves each batch into a polars frame as it fills."""

    def __init__(self, flush: Callable[[Found], object] | None = None) -> None:
        self.rel: list[str] = []
        self.link: list[str | None] = []  # the resolved target of a symlink, else None
        self.size: list[int] = []
        self.mtime_ns: list[int] = []
        self.depth = 0
        self.others = 0
        self.flush = flush

    def add(self, rel: str, link: str | None, size: int, mtime_ns: int) -> None:
        self.rel.append(rel)
        self.link.append(link)
        self.size.append(size)
        self.mtime_ns.append(mtime_ns)
        if self.flush is not None and len(self.rel) >= BATCH:
            self.flush(self)

    def take(self) -> tuple[list[str], list[str | None], list[int], list[int]]:
        """The files found since the last take (rel, link, size, mtime_ns), handed over."""
        batch = self.rel, self.link, self.size, self.mtime_ns
        self.rel, self.link, self.size, self.mtime_ns = [], [], [], []
        return batch


_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"))


def not_regular(mode: int) -> str | None:
    """Why a search file of this mode is not read ("not a regular file (a FIFO); not read"), or None
    for a regular file. Reading a FIFO would wait for a writer forever, a device could be endless."""
    if stat.S_ISREG(mode):
        return None
    kind = next((name for test, name in _KINDS if test(mode)), "not a file")
    return f"not a regular file ({kind}); not read"


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # os.scandir hands undecodable bytes back as surrogate escapes
        return False
    return True


def walk(root: Path, roots: tuple[str, ...], flush: Callable[[Found], object] | None = None
         ) -> tuple[Found, list[tuple[str, str, str]]]:
    """Every search file below root (symlinks only when they stay inside the roots), the depth of
    every other file, and the search files refused unread.

    Each folder is opened relative to root, and its entries are stat'ed relative to that folder
    (fstatat): resolving one name instead of the whole path makes the walk ~11% faster (0.10 ->
    0.09 s at 20,000 search files, 0.76 -> 0.67 s at 100,000; a re-run is mostly this walk). A
    folder swapped for a symlink after it was listed is not followed (O_NOFOLLOW). Only one
    folder is open at a time, however wide the tree."""
    found = Found(flush)
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


def _walk_folder(fd: int, top: str, prefix: str, depth: int, roots: tuple[str, ...], found: Found,
                 refused: list[tuple[str, str, str]], stack: list[tuple[str, int]]) -> None:
    """One folder of walk(), open as fd: its search files into found, its sub-folders onto stack."""
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
            st = entry.stat()  # a FIFO is stat'ed, never opened: nothing here can wait for a writer
        except OSError:
            continue
        why = not_regular(st.st_mode)
        if why is not None:  # left out of the plan, but never in silence: the counts add up to the disk
            if not stat.S_ISDIR(st.st_mode):
                refused.append((rel, "unreadable", why))
            continue
        found.add(rel, link, st.st_size, st.st_mtime_ns)


def fingerprint(files: Iterable[tuple[str, str | None, int, int]]) -> str:
    """Names the state of a tree: SHA-256 of its search files' (rel, link, size, mtime_ns) in path
    order, the order the plan keeps them in."""
    digest = hashlib.sha256()
    for rel, link, size, mtime_ns in files:
        digest.update(f"{rel}\0{link or ''}\0{size}\0{mtime_ns}\n".encode())
    return digest.hexdigest()
