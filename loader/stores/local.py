"""The local image store: a folder with one file per distinct screenshot, content-addressed.

`sha256/ab/cd/<hash>.png`: storing is idempotent, a file already there is never written again,
and a crash between storing and committing leaves only a file the next run reuses. Kept free of
polars, so that an unchanged re-run (unchanged.py) can check the store before polars is imported.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import hashlib
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from loader.errors import StorageError

BLOCK = 1 << 20
FICLONE = 0x40049409  # linux/fs.h: _IOW(0x94, 9, int), share the source's extents (btrfs, XFS)
# Errors that mean "this file system (pair) cannot do that", so the next way is tried.
_UNSUPPORTED = frozenset({errno.EXDEV, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL, errno.ENOSYS,
                          errno.ENOTTY, errno.EBADF, errno.EPERM})


def storage_path(content_hash: str) -> str:
    return f"sha256/{content_hash[:2]}/{content_hash[2:4]}/{content_hash}.png"


@dataclass(frozen=True, slots=True)
class StoredObject:
    """One object of a store's listing (gc, status): its key below the store's root, its size in
    bytes, and when it was last put there (Unix time)."""

    key: str
    size: int
    stored_at: float


class _Ways:
    """Which ways of copying failed as unsupported, per source file system (st_dev), for the whole
    load: once a clone (or copy_file_range) from a file system into the store has failed so, every
    later screenshot from there skips the attempt, a system call saved per screenshot."""

    def __init__(self) -> None:
        self.no_clone: set[int] = set()
        self.no_range: set[int] = set()


def _clone_into(inp: int, out: int, size: int, ways: _Ways | None = None, dev: int = -1) -> None:
    """Give out the bytes of inp: a copy-on-write clone (free on btrfs/XFS), else an in-kernel
    copy (copy_file_range), else read and write."""
    if ways is None or dev not in ways.no_clone:
        try:
            fcntl.ioctl(out, FICLONE, inp)
            return
        except OSError as exc:
            if exc.errno not in _UNSUPPORTED:
                raise
            if ways is not None:
                ways.no_clone.add(dev)
    if ways is None or dev not in ways.no_range:
        copied = 0
        try:
            while copied < size and (n := os.copy_file_range(inp, out, size - copied)):
                copied += n
            return
        except OSError as exc:
            if exc.errno not in _UNSUPPORTED or copied:
                raise
            if ways is not None:
                ways.no_range.add(dev)
    with open(inp, "rb", closefd=False) as src, open(out, "wb", closefd=False) as dst:
        shutil.copyfileobj(src, dst, BLOCK)


def _new_object(folder: str) -> tuple[int, str | None]:
    """An open file in folder for a new object's bytes: nameless (O_TMPFILE) where the file system
    allows it, so that a crash leaves nothing behind, else under a temporary name (a dot first).

    The temporary name is unique by process and thread (O_EXCL still guards it), which spares
    mkstemp's random names; a name a crashed process left behind falls back to mkstemp."""
    if _NAMELESS.ok:
        try:
            return os.open(folder, os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o600), None
        except OSError as exc:
            if exc.errno not in _UNSUPPORTED and exc.errno != errno.EISDIR:
                raise
            _NAMELESS.ok = False
    tmp = os.path.join(folder, f".new.{os.getpid()}.{threading.get_ident()}")
    try:
        return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600), tmp
    except FileExistsError:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".new.")
        return fd, tmp


def _publish(fd: int, tmp: str | None, dst: str) -> bool:
    """Give the finished object (fd) its hash name dst; False when an object already has it (another
    load or worker stored the same screenshot first: the bytes are the same, the count stays exact).
    Not fsync'ed here: a load syncs the store's file system once before it commits (sync_to_disk)."""
    try:
        if tmp is None:  # linkat(AT_SYMLINK_FOLLOW) of /proc/self/fd/N names an O_TMPFILE file
            os.link(f"/proc/self/fd/{fd}", dst, src_dir_fd=_ROOT_FD.get(), follow_symlinks=True)
        else:
            os.link(tmp, dst)
        return True
    except FileExistsError:
        return False
    finally:
        os.close(fd)
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def _discard(fd: int, tmp: str | None) -> None:
    os.close(fd)
    if tmp is not None:
        Path(tmp).unlink(missing_ok=True)


def _copy_atomically(src: str, dst: str, ways: _Ways | None = None) -> bool:
    """Copy src into the store as dst, whole or not at all (see _new_object); False when dst was
    there already."""
    fd, tmp = _new_object(os.path.dirname(dst))
    try:
        inp = os.open(src, os.O_RDONLY | os.O_CLOEXEC)
        try:
            st = os.fstat(inp)
            _clone_into(inp, fd, st.st_size, ways, st.st_dev)
        finally:
            os.close(inp)
    except BaseException:
        _discard(fd, tmp)
        raise
    return _publish(fd, tmp, dst)


def _write_atomically(data: bytes, dst: str) -> bool:
    """Write data into the store as dst, whole or not at all; False when dst was there already."""
    fd, tmp = _new_object(os.path.dirname(dst))
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except BaseException:
        _discard(fd, tmp)
        raise
    return _publish(fd, tmp, dst)


class _Nameless:
    """Whether this process can make nameless files (O_TMPFILE, published through /proc/self/fd);
    after one refusal by the file system, named temporary files."""

    ok = os.path.isdir("/proc/self/fd")


class _RootFd:
    """Any open directory, for os.link to call linkat (with a dir_fd it does; without, link(2),
    which cannot follow /proc/self/fd). Opened once per process, never closed."""

    fd = -1

    def get(self) -> int:
        if self.fd < 0:
            self.fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        return self.fd


_NAMELESS = _Nameless()
_ROOT_FD = _RootFd()
_MADE: dict[str, set[str]] = {}  # per store root: the sha256/ab/cd folders this process made or found


def sync_to_disk(root: Path) -> None:
    """Flush everything written to the file system holding root (one syncfs, not an fsync per file),
    so that image_assets rows commit only for screenshots that are on disk. os.sync without syncfs."""
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        return  # no store yet: nothing was written to it
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        syncfs = getattr(libc, "syncfs", None)
        if syncfs is None:
            os.sync()
        elif syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), str(root))
    finally:
        os.close(fd)


def _put(root: str, content_hash: str, src: str, place: Callable[[str, bool], bool]) -> bool:
    """place(the object's path, whether its folder was new) in its sha256/ab/cd folder, made first
    if this process has not made or found it yet (folders are never removed, gc included); should
    one vanish meanwhile (removed by hand), the first attempt's FileNotFoundError makes it again.

    In a folder it has just made, nothing can be there yet but what a concurrent worker or load
    puts at the same moment (publishing then finds it), so place() need not look first: a stat
    saved per screenshot of a first load."""
    dst = os.path.join(root, storage_path(content_hash))
    folder = os.path.dirname(dst)
    made = _MADE.setdefault(root, set())
    try:
        new = folder not in made and _make(folder, made)
        try:
            return place(dst, new)
        except FileNotFoundError:
            return place(dst, _make(folder, made))
    except OSError as exc:
        raise StorageError(f"cannot store screenshot {src} in {root}: {exc.strerror or exc}") from exc


def _make(folder: str, made: set[str]) -> bool:
    """Make folder (and its parents); whether it is new, i.e. empty."""
    try:
        os.mkdir(folder)
        new = True
    except FileNotFoundError:
        os.makedirs(folder, exist_ok=True)
        new = False
    except FileExistsError:
        new = False
    made.add(folder)
    return new


@dataclass(frozen=True, slots=True)
class Sink:
    """Puts a screenshot into a local store from the bytes a worker has just read and hashed: no
    second open of the source, no copy from a file that may have changed since it was hashed (so no
    check_sources), and the worker processes share the store's file-system work. Picklable."""

    root: str

    def __call__(self, content_hash: str, data: bytes, src: str) -> bool:
        """Store data as content_hash; True when it was not in the store yet."""
        return _put(self.root, content_hash, src,
                    lambda dst, new: (new or not os.path.exists(dst)) and _write_atomically(data, dst))


class LocalStore:
    """A folder holding one file per distinct screenshot."""

    storage_type = "local"
    partial_failures = False  # a failure fails the load, so image rows need not wait for the store

    def __init__(self, root: Path, link: bool = False) -> None:
        self.root = root
        self.link = link
        self._ways = _Ways()

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
        return _put(str(self.root), content_hash, src, lambda dst, new: self._place(src, dst, new))

    def sink(self) -> Sink | None:
        """What a worker stores the screenshots it hashes with, from their bytes in hand (copy mode)."""
        return None if self.link else Sink(os.path.abspath(self.root))

    def _place(self, src: str, dst: str, new: bool) -> bool:
        if not self.link:
            return (new or not os.path.exists(dst)) and _copy_atomically(src, dst, self._ways)
        try:
            os.link(src, dst)
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                raise
            return not os.path.exists(dst) and _copy_atomically(src, dst, self._ways)
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
