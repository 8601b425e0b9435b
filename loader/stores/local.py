"""The local image store: a folder with one file per distinct screenshot, content-addressed.

`sha256/ab/cd/<hash>.png`: storing is idempotent, a file already there is never written again,
and a crash between storing and committing leaves only a file the next run reuses. Kept free of
polars, so that an unchanged re-run (unchanged.py) can check the store before polars is imported.
"""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from loader.errors import StorageError
from loader.stores.objects import BLOCK, Sink, Ways, clones, copy_object, exists, put, storage_path, sync_to_disk

__all__ = ["BLOCK", "LocalStore", "Sink", "StoredObject", "storage_path"]


@dataclass(frozen=True, slots=True)
class StoredObject:
    """One object of a store's listing (gc, status): its key below the store's root, its size in
    bytes, and when it was last put there (Unix time)."""

    key: str
    size: int
    stored_at: float


class LocalStore:
    """A folder holding one file per distinct screenshot."""

    storage_type = "local"
    partial_failures = False  # a failure fails the load, so image rows need not wait for the store

    def __init__(self, root: Path, link: bool = False) -> None:
        self.root = root
        self.link = link
        self._ways = Ways()

    def missing(self, hashes: list[str]) -> list[str]:
        """The hashes not yet in the store: one access() each, relative to the open store folder
        (a re-run asks this of every screenshot: 0.049 s for 18,000, against 0.056 s by whole paths)."""
        try:
            folder = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return list(hashes)  # no store yet: nothing is in it
        try:
            return [h for h in hashes if not os.access(storage_path(h), os.F_OK, dir_fd=folder)]
        finally:
            os.close(folder)

    def put(self, content_hash: str, src: str) -> bool:
        """Copy the screenshot into the store (a clone where the file system can), or hard-link it
        with link on (copying when across file systems); True when it was not there yet.

        A hard link shares the scrape's file: a scraper that later rewrites that file in place would
        change the stored bytes too, which is why `--image-link link` is an explicit opt-in.
        """
        return put(str(self.root), content_hash, src, lambda fd, name, new: self._place(src, fd, name, new))

    def sink(self, sources: str) -> Sink | None:
        """What a worker stores the screenshots it hashes with, from their bytes in hand: in copy
        mode, unless this store can clone the screenshots of `sources` (a folder) instead, which the
        store thread does (free on a copy-on-write file system: no second copy of the bytes)."""
        if self.link or clones(sources, str(self.root)):
            return None
        return Sink(os.path.abspath(self.root))

    def _place(self, src: str, root: int, name: str, new: bool) -> bool:
        if not self.link:
            return (new or not exists(root, name)) and copy_object(src, root, name, self._ways)
        try:
            os.link(src, name, dst_dir_fd=root, follow_symlinks=False)
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                raise
            return not exists(root, name) and copy_object(src, root, name, self._ways)
        return True

    def store_many(self, items: Iterable[tuple[str, str, str | None]]) -> tuple[int, dict[str, str]]:
        """Store (hash, source path, content type) items: (how many were new, {}); a local failure
        (disk full) fails the load instead of being reported per screenshot. One thread: spreading
        the items over two made a 20,000-file load slower on a 2-core machine (4.96 s against
        4.23 s, benchmarks.store_cost), the parse and the COPY lane wanting the same cores."""
        return sum(self.put(content_hash, src) for content_hash, src, _ in items), {}

    def check_sources(self, items: Iterable[tuple[str, str, int, int]]) -> None:
        """After storing (hash, source path, size, mtime_ns as hashed) items: a source whose size or
        mtime moved since it was hashed may have been rewritten between its hashing and its copy (a
        scraper running beside the load), so its stored object is hashed again; one that does not
        hash to its name is removed and the load fails, rather than keep bytes under another
        screenshot's name. One stat per screenshot; a read only for those that moved."""
        for content_hash, src, size, mtime_ns in items:
            try:
                st = os.stat(src)
                if (st.st_size, st.st_mtime_ns) == (size, mtime_ns):
                    continue
            except OSError:
                pass  # gone since it was hashed: check the stored object all the same
            stored = os.path.join(str(self.root), storage_path(content_hash))
            try:
                if _sha256_of(stored) == content_hash:
                    continue
                os.unlink(stored)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise StorageError(f"cannot check stored screenshot {stored}: {exc.strerror or exc}") from exc
            raise StorageError(f"screenshot {src} changed while this load was reading it (its hash no longer "
                               "matches its bytes); nothing was committed: run the load again")

    def sync(self) -> None:
        """Make what this load stored durable before its rows commit (see sync_to_disk)."""
        try:
            sync_to_disk(self.root)
        except OSError as exc:
            raise StorageError(f"cannot flush the image store {self.root} to disk: {exc.strerror or exc}") from exc

    def sizes(self, hashes: list[str]) -> dict[str, int]:
        """Size of each stored screenshot; absent ones are left out."""
        found: dict[str, int] = {}
        for h in hashes:
            try:
                found[h] = (self.root / storage_path(h)).stat().st_size
            except OSError:
                continue
        return found

    def objects(self) -> Iterator[StoredObject]:
        """Every file in sha256/ab/cd/, with its size and when it was put there: its inode change
        time (a hard link keeps the scrape's mtime, but linking sets the ctime), or its mtime if
        later. Includes the temporary files of a copy that a crash left behind (names starting with
        a dot)."""
        for first in _entries(self.root / "sha256", folders=True):
            for second in _entries(first.path, folders=True):
                for entry in _entries(second.path, folders=False):
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:  # removed meanwhile
                        continue
                    yield StoredObject(f"sha256/{first.name}/{second.name}/{entry.name}", st.st_size,
                                       max(st.st_mtime, st.st_ctime))

    def delete(self, keys: list[str]) -> tuple[dict[str, int], dict[str, str]]:
        """Remove these objects: ({key: bytes freed} of those removed, {key: reason} of those that
        could not be). A key already gone is neither. The emptied folders stay (at most 65,536)."""
        removed: dict[str, int] = {}
        failed: dict[str, str] = {}
        for key in keys:
            path = self.root / key
            try:
                size = path.lstat().st_size
                path.unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                failed[key] = exc.strerror or str(exc)
                continue
            removed[key] = size  # on disk only once no hard link (a scrape's file) holds them
        return removed, failed

    def rehash(self, content_hash: str) -> str | None:
        """verify --deep: the SHA-256 of the stored object's bytes; None when it cannot be read."""
        try:
            return _sha256_of(str(self.root / storage_path(content_hash)))
        except OSError:
            return None


def _sha256_of(path: str) -> str:
    """The SHA-256 of a stored object's bytes, as its name should be (OSError when unreadable)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _entries(parent: Path | str, folders: bool) -> list[os.DirEntry[str]]:
    """The sub-folders (or the files) of parent, in name order; none when it does not exist."""
    try:
        with os.scandir(parent) as found:
            return sorted((e for e in found if (e.is_dir if folders else e.is_file)(follow_symlinks=False)),
                          key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return []
