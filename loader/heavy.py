"""Heavy imports (polars, psycopg) kept out of the garbage collector's reach.

Every late import of such a library, in the loader, its workers or its db process, goes through
`kept_for_good`, so the objects it leaves behind are never walked by a full collection again.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
from collections.abc import Iterator

M_MMAP_THRESHOLD = -3  # glibc malloc.h
M_ARENA_MAX = -8


@contextlib.contextmanager
def kept_for_good() -> Iterator[None]:
    """No cyclic garbage collection while libraries are imported, and none of it later either.

    Importing polars, psycopg and the loader leaves ~82,000 objects the collector tracks, all of
    them alive until the process exits. It ran ~100 times during those imports, and a full
    collection of them takes 0.04 s: together 0.02-0.05 s of a 0.6 s load of 515 files, and more
    where an import comes late, after a walk has left its own objects for every collection to
    visit. gc.freeze() moves them out of its reach; objects made by the load itself are collected
    as usual. Every late import of psycopg or polars goes through here.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def tune_allocator() -> None:
    """Keep glibc's malloc from hoarding what a long load frees: two arenas for the loader's threads
    (not one per thread, each keeping its own high-water mark), and a fixed mmap threshold (each
    chunk's rows, a few MB, come from mmap and go back whole, instead of fragmenting the heap once
    the dynamic threshold has grown past them). Peak RSS at 100,000 files: 303 -> 275 MB. A no-op
    where the C library is not glibc."""
    try:
        mallopt = libc().mallopt
    except (OSError, AttributeError):
        return
    mallopt(M_ARENA_MAX, 2)
    mallopt(M_MMAP_THRESHOLD, 256 * 1024)


@functools.cache
def libc() -> ctypes.CDLL:
    """The C library's functions, through the symbols already loaded into this process (the
    interpreter links it): find_library("c") ran `ldconfig -p` in a subprocess, ~3 ms of every
    load's start-up."""
    return ctypes.CDLL(None, use_errno=True)
