"""How one object gets into a local image store: whole or not at all, under its hash name.

An object is written into a nameless file (O_TMPFILE) and given its name by one link, so that a
crash never leaves part of a screenshot under a hash name, nor a temporary file behind; two
writers of the same screenshot (workers, concurrent loads) find out by the link which one stored
it, so the count of screenshots stored stays exact. Used by the store lane (LocalStore) and, from
the bytes they have just hashed, by the worker processes (Sink). Nothing here is fsync'ed: a load
syncs the store's file system before it commits (sync_to_disk).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from loader.errors import StorageError
from loader.heavy import libc

BLOCK = 1 << 20
FICLONE = 0x40049409  # linux/fs.h: _IOW(0x94, 9, int), share the source's extents (btrfs, XFS)
# Errors that mean "this file system (pair) cannot do that", so the next way is tried.
_UNSUPPORTED = frozenset({errno.EXDEV, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL, errno.ENOSYS,
                          errno.ENOTTY, errno.EBADF, errno.EPERM})


def storage_path(content_hash: str) -> str:
    return f"sha256/{content_hash[:2]}/{content_hash[2:4]}/{content_hash}.png"


class Ways:
    """Which ways of copying failed as unsupported, per source file system (st_dev), for the whole
    load: once a clone (or copy_file_range) from a file system into the store has failed so, every
    later screenshot from there skips the attempt, a system call saved per screenshot."""

    def __init__(self) -> None:
        self.no_clone: set[int] = set()
        self.no_range: set[int] = set()


def clone_into(inp: int, out: int, size: int, ways: Ways | None = None, dev: int = -1) -> None:
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


def _new_object(root: int, folder: str) -> tuple[int, str | None]:
    """An open file in folder (relative to the open store root) for a new object's bytes: nameless
    (O_TMPFILE) where the file system allows it, so that a crash leaves nothing behind, else under
    a temporary name (a dot first), unique by process, thread and chance (O_EXCL guards it)."""
    if _NAMELESS.ok:
        try:
            return os.open(folder, os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o600, dir_fd=root), None
        except OSError as exc:
            if exc.errno not in _UNSUPPORTED and exc.errno != errno.EISDIR:
                raise
            _NAMELESS.ok = False
    while True:
        tmp = f"{folder}/.new.{os.getpid()}.{threading.get_ident()}.{os.urandom(4).hex()}"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600, dir_fd=root), tmp
        except FileExistsError:  # left by a crashed process of the same pid and thread id
            continue


def _publish(fd: int, tmp: str | None, root: int, name: str) -> bool:
    """Give the finished object (fd) its hash name (relative to the open store root); False when an
    object already has it (another load or worker stored the same screenshot first: the bytes are
    the same, the count stays exact). Not fsync'ed here: a load syncs the store's file system once
    before it commits (sync_to_disk)."""
    try:
        if tmp is None:  # linkat(AT_SYMLINK_FOLLOW) of /proc/self/fd/N names an O_TMPFILE file
            os.link(f"/proc/self/fd/{fd}", name, src_dir_fd=root, dst_dir_fd=root, follow_symlinks=True)
        else:
            os.link(tmp, name, src_dir_fd=root, dst_dir_fd=root, follow_symlinks=False)
        return True
    except FileExistsError:
        return False
    finally:
        _discard(fd, tmp, root)


def _discard(fd: int, tmp: str | None, root: int) -> None:
    os.close(fd)
    if tmp is not None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=root)


def _store_object(root: int, name: str, fill: Callable[[int], None]) -> bool:
    """A new object named name in the store (the open root), its bytes written by fill(fd), whole
    or not at all (see _new_object); False when name was there already."""
    fd, tmp = _new_object(root, os.path.dirname(name))
    try:
        fill(fd)
    except BaseException:
        _discard(fd, tmp, root)
        raise
    return _publish(fd, tmp, root, name)


def copy_object(src: str, root: int, name: str, ways: Ways | None = None) -> bool:
    """Copy src into the store as name (a clone where the file systems allow it)."""
    def fill(fd: int) -> None:
        inp = os.open(src, os.O_RDONLY | os.O_CLOEXEC)
        try:
            st = os.fstat(inp)
            clone_into(inp, fd, st.st_size, ways, st.st_dev)
        finally:
            os.close(inp)
    return _store_object(root, name, fill)


def write_object(data: bytes | memoryview, root: int, name: str) -> bool:
    """Write data into the store as name."""
    def fill(fd: int) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    return _store_object(root, name, fill)


def exists(root: int, name: str) -> bool:
    """Whether the store (the open root) has an object of that name."""
    try:
        os.stat(name, dir_fd=root, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


class _Nameless:
    """Whether this process can make nameless files (O_TMPFILE, published through /proc/self/fd);
    after one refusal by the file system, named temporary files."""

    ok = os.path.isdir("/proc/self/fd")


_NAMELESS = _Nameless()
_MADE: dict[str, set[str]] = {}  # per store root: the sha256/ab/cd folders this process made or found
_ROOTS: dict[str, int] = {}  # per store root: this process's open descriptor of it (_root)
_ROOTS_LOCK = threading.Lock()
OPEN_ROOTS = 8  # at most that many kept open; more roots in one process (tests) reopen as needed


def _root(root: str) -> int:
    """This process's open descriptor of the store root (made if missing): every call on an object
    goes relative to it, a path walk of 4 names instead of ~10 (11 µs of ~50 per object here)."""
    fd = _ROOTS.get(root)
    if fd is not None:
        return fd
    with _ROOTS_LOCK:  # an in-process load's hashing threads may both get here first
        fd = _ROOTS.get(root)
        if fd is None:
            os.makedirs(root, exist_ok=True)
            fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            while len(_ROOTS) >= OPEN_ROOTS:
                os.close(_ROOTS.pop(next(iter(_ROOTS))))
                _MADE.clear()
            _ROOTS[root] = fd
        return fd


def _forget(root: str) -> None:
    """The root was removed (and perhaps made again) since it was opened: open it anew next time."""
    with _ROOTS_LOCK:
        fd = _ROOTS.pop(root, None)
        if fd is not None:
            os.close(fd)
        _MADE.pop(root, None)


# File systems whose files can share extents (FICLONE): a clone costs no copy of the bytes there.
CLONING = frozenset({"btrfs", "xfs", "bcachefs", "ocfs2"})


def clones(source: str, store: str, mounts: str = "/proc/self/mounts") -> bool:
    """Whether copies from source (a folder) into store can be clones: both on one file system of
    a CLONING type. The store may not exist yet: its nearest existing folder stands for it."""
    try:
        src = os.stat(source)
        here = os.path.abspath(store)
        while not os.path.exists(here):
            here = os.path.dirname(here)
        if os.stat(here).st_dev != src.st_dev:
            return False
        with open(mounts) as f:
            table = [line.split() for line in f]
    except OSError:
        return False
    real = os.path.realpath(here)
    best, kind = "", ""
    for fields in table:
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        if (real == point or real.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
            best, kind = point, fields[2]
    return kind in CLONING


def sync_to_disk(root: Path) -> None:
    """Flush everything written to the file system holding root (one syncfs, not an fsync per file),
    so that image_assets rows commit only for screenshots that are on disk. os.sync without syncfs."""
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        return  # no store yet: nothing was written to it
    try:
        syncfs = getattr(libc(), "syncfs", None)
        if syncfs is None:
            os.sync()
        elif syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), str(root))
    finally:
        os.close(fd)


def put(root: str, content_hash: str, src: str, place: Callable[[int, str, bool], bool]) -> bool:
    """place(the open store root, the object's name below it, whether its folder was new), in its
    sha256/ab/cd folder, made first if this process has not made or found it yet (folders are never
    removed, gc included). Should a folder vanish meanwhile (removed by hand), the first attempt's
    FileNotFoundError makes it again; should the root itself, it is opened anew.

    In a folder it has just made, nothing can be there yet but what a concurrent worker or load
    puts at the same moment (publishing then finds it), so place() need not look first: a stat
    saved per screenshot of a first load."""
    name = storage_path(content_hash)
    folder = os.path.dirname(name)
    try:
        for attempt in (1, 2):
            fd = _root(root)
            made = _MADE.setdefault(root, set())
            try:
                new = folder not in made and _make(fd, folder, made)
                try:
                    return place(fd, name, new)
                except FileNotFoundError:
                    return place(fd, name, _make(fd, folder, made))
            except FileNotFoundError:
                if attempt == 2:
                    raise
                _forget(root)
        raise AssertionError("unreachable")
    except OSError as exc:
        raise StorageError(f"cannot store screenshot {src} in {root}: {exc.strerror or exc}") from exc


def _make(root: int, folder: str, made: set[str]) -> bool:
    """Make folder (and its parents) below the open root; whether it is new, i.e. empty."""
    try:
        os.mkdir(folder, dir_fd=root)
        new = True
    except FileNotFoundError:  # sha256/ or sha256/ab/ is missing too
        parent = os.path.dirname(folder)
        for path in (os.path.dirname(parent), parent, folder):
            with contextlib.suppress(FileExistsError):
                os.mkdir(path, dir_fd=root)
        new = False  # made here, but a concurrent writer may have made it first
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

    def __call__(self, content_hash: str, data: bytes | memoryview, src: str) -> bool:
        """Store data as content_hash; True when it was not in the store yet."""
        return put(self.root, content_hash, src,
                   lambda fd, name, new: (new or not exists(fd, name)) and write_object(data, fd, name))
