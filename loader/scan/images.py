"""Screenshots: find and hash them (worker functions); where each goes in the store (stores/local.py).

A scrape is untrusted input: `resolve` only ever looks below the configured roots, by trailing
parts of the path the JSON names, and follows a symlink only when its target stays inside them.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import polars as pl

from loader.scan.walk import JSON_SUFFIX, inside

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# One row per loaded search file: the screenshot it refers to, with what a later run needs to
# trust the hash again (size, mtime) and what image_assets records.
IMAGE_SCHEMA: dict[str, Any] = {
    "file_order": pl.Int64, "image_rel": pl.String, "path": pl.String, "size": pl.Int64,
    "mtime_ns": pl.Int64, "content_hash": pl.String, "file_size": pl.Int64, "content_type": pl.String,
    "width": pl.Int32, "height": pl.Int32, "error": pl.String,
    # True: this worker put it into the store, False: it was there already, None: not stored here
    # (left to the store lane: remembered hash, larger than one read, no sink, or an error).
    "stored": pl.Boolean,
}
Known = tuple[int, int, str, int, "str | None", "int | None", "int | None"]  # size, mtime, hash, ...
BLOCK = 1 << 20  # bytes per read of a screenshot larger than one read holds
MIN_PER_THREAD = 32  # screenshots: fewer are hashed in line (starting a thread costs ~0.1 ms)


@dataclass(frozen=True)
class Roots:
    """Where screenshots may be: absolute folders (the states folder first), and the deepest path."""

    roots: tuple[str, ...]
    depth: int
    max_bytes: int = 50 * 1024 * 1024
    # Earlier runs' hash facts (image_rel, then Known's fields), turned into a look-up only when
    # the chunk has a screenshot to describe: a chunk of rejected files never pays for it.
    known: pl.DataFrame | None = None
    # Stores a screenshot from the bytes just hashed: (hash, bytes, path) -> newly stored, or None
    # when it did not (the store lane will). None: the lane stores them all (stores/objects.py Sink).
    # Never given the screenshots in `withheld`.
    sink: Callable[[str, bytes | memoryview, str], bool | None] | None = None
    withheld: frozenset[str] = frozenset()


def candidates(source: str | None, json_rel: str, depth: int) -> list[str]:
    """Relative paths to try, longest first, as FORMAT.md says: every trailing part of
    source_image_file (never one with `..`), or the JSON's own stem when the field is absent."""
    if source is None:
        return [json_rel[: -len(JSON_SUFFIX)] + ".png"] if json_rel.endswith(JSON_SUFFIX) else []
    parts = [p for p in source.replace("\\", "/").split("/") if p not in ("", ".")][-max(depth, 1):]
    if ".." in parts:  # every tail that starts at or before the last `..` holds it
        parts = parts[len(parts) - parts[::-1].index(".."):]
    return ["/".join(parts[i:]) for i in range(len(parts))]


def resolve(source: str | None, json_rel: str, roots: Roots, folders: dict[str, bool] | None = None
            ) -> tuple[str, str] | None:
    """(path relative to its root, absolute path) of the screenshot, or None when nothing matches.

    `folders` remembers, across calls, whether each folder resolves inside the roots: a chunk's
    screenshots share a few folders, and resolving every path in full was a third of a worker's time.
    """
    folders = {} if folders is None else folders
    for cand in candidates(source, json_rel, roots.depth):
        for root in roots.roots:
            path = os.path.join(root, cand)
            try:
                mode = os.lstat(path).st_mode
            except OSError:
                continue
            if stat.S_ISLNK(mode):  # the link's target must itself be a file inside the roots
                if os.path.isfile(path) and inside(os.path.realpath(path), roots.roots):
                    return cand, path
            elif stat.S_ISREG(mode) and _folder_inside(os.path.dirname(path), roots.roots, folders):
                return cand, path
    return None


def _folder_inside(folder: str, roots: tuple[str, ...], folders: dict[str, bool]) -> bool:
    known = folders.get(folder)
    if known is None:
        known = folders[folder] = inside(os.path.realpath(folder), roots)
    return known


def sniff(head: bytes) -> tuple[str | None, int | None, int | None]:
    """Content type, width and height from the first bytes; None when it is not a known image."""
    if head.startswith(PNG_SIGNATURE) and head[12:16] == b"IHDR" and len(head) >= 24:
        return "image/png", int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg", None, None
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif", int.from_bytes(head[6:8], "little"), int.from_bytes(head[8:10], "little")
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp", None, None
    return None, None, None


class _Buffer(threading.local):
    """Each thread's read buffer: a screenshot is read into it, not into a new bytes object (whose
    fresh pages the kernel zeroed for every 20 KB screenshot: ~7 % of a worker's time)."""

    def __init__(self) -> None:  # run once in each thread that uses it
        self.view = memoryview(bytearray(BLOCK + 1))


_BUFFER = _Buffer()


def _hash_one(fd: int, max_bytes: int, size: int) -> tuple[str, int, bytes, memoryview | None]:
    """(SHA-256, bytes read, the first bytes, the whole content when one read held it: a view of
    this thread's buffer, good until its next call)."""
    if size > max_bytes:
        raise ValueError(f"larger than the {max_bytes} byte limit")
    h = hashlib.sha256()
    total = 0
    head = b""
    whole: memoryview | None = None
    buf = _BUFFER.view
    want = min(size, BLOCK) + 1  # one read holds a screenshot whole, and its shortness shows the end
    while n := os.readv(fd, [buf[:want]]):
        block = buf[:n]
        if not head:
            head = bytes(block[:64])
            whole = block
        else:
            whole = None
        h.update(block)
        total += n
        if n < want:
            break
        want = BLOCK
    return h.hexdigest(), total, head, whole


def describe(rel: str, path: str, roots: Roots, known: dict[str, Known] | None = None) -> tuple[Any, ...]:
    """(size, mtime_ns, content_hash, file_size, content_type, width, height, error, stored) of one
    screenshot, read once in large blocks; the hash of an earlier run when size and mtime match.
    With a sink, a screenshot read whole is stored from those very bytes (a StorageError raises)."""
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            st = os.fstat(fd)
            facts = known.get(rel) if known else None
            if facts is not None and facts[:2] == (st.st_size, st.st_mtime_ns):
                return (*facts, None, None)
            digest, total, head, whole = _hash_one(fd, roots.max_bytes, st.st_size)
        finally:
            os.close(fd)
    except (OSError, ValueError) as exc:
        return (None, None, None, None, None, None, None, getattr(exc, "strerror", None) or str(exc), None)
    stored = None
    if roots.sink is not None and whole is not None and rel not in roots.withheld:
        stored = roots.sink(digest, whole, path)
    return (st.st_size, st.st_mtime_ns, digest, total, *sniff(head), None, stored)


def describe_files(file_ids: list[int], sources: list[str | None], json_rels: list[str], roots: Roots,
                   threads: int = 1) -> tuple[pl.DataFrame, list[tuple[str, str, str]]]:
    """The screenshot of each search file, and a missing_image warning for each that has none.

    With threads > 1 the distinct screenshots are read and hashed by that many threads: reads and
    SHA-256 release the GIL, so a load small enough to run in-process hashes on every core.
    """
    warnings: list[tuple[str, str, str]] = []
    found: list[tuple[str, str] | None] = []
    folders: dict[str, bool] = {}
    for source, json_rel in zip(sources, json_rels, strict=True):
        where = resolve(source, json_rel, roots, folders)
        if where is None:
            shown = source if source is not None else "<stem>.png"
            warnings.append((json_rel, "missing_image", f"screenshot {shown[:200]} not found under the states "
                             "folder; loaded without image"))
        found.append(where)
    distinct = dict(f for f in found if f is not None)  # a screenshot shared by several searches is read once
    known = ({r[0]: r[1:] for r in roots.known.iter_rows()}
             if roots.known is not None and distinct else None)
    facts = dict(zip(distinct, _describe_all(list(distinct.items()), roots, known, threads), strict=True))
    none = (None,) * 11
    rows = [(file_id, *(none if f is None else (f[0], f[1], *facts[f[0]])))
            for file_id, f in zip(file_ids, found, strict=True)]
    cols = zip(*rows, strict=True) if rows else ([] for _ in IMAGE_SCHEMA)
    return pl.DataFrame(dict(zip(IMAGE_SCHEMA, map(list, cols), strict=True)), schema=IMAGE_SCHEMA), warnings


def _describe_all(shots: list[tuple[str, str]], roots: Roots, known: dict[str, Known] | None, threads: int
                  ) -> list[tuple[Any, ...]]:
    """describe() of each (rel, path), in order; in `threads` interleaved slices when worth it."""
    if threads <= 1 or len(shots) < 2 * MIN_PER_THREAD:
        return [describe(rel, path, roots, known) for rel, path in shots]
    n = min(threads, len(shots) // MIN_PER_THREAD)
    with ThreadPoolExecutor(n, thread_name_prefix="pharmload-hash") as pool:
        parts = list(pool.map(lambda part: [describe(rel, path, roots, known) for rel, path in part],
                              [shots[i::n] for i in range(n)]))
    out: list[tuple[Any, ...]] = [()] * len(shots)
    for i, part in enumerate(parts):
        out[i::n] = part
    return out


def storage_paths(hashes: pl.Expr) -> pl.Expr:
    """storage_path() of a whole column, without a Python call per screenshot."""
    return pl.concat_str([pl.lit("sha256/"), hashes.str.slice(0, 2), pl.lit("/"), hashes.str.slice(2, 2),
                          pl.lit("/"), hashes, pl.lit(".png")])


