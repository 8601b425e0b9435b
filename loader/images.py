"""Screenshots: hash them (a worker function) and put each distinct one once into the image store.

The store is content-addressed (`sha256/ab/cd/<hash>.png`), so storing is idempotent: a file that
is already there is never written again, and a crash between storing and committing leaves only
a file the next run reuses.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from loader.errors import StorageError

BLOCK = 1 << 20
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HASH_SCHEMA: dict[str, Any] = {
    "image_rel": pl.String, "content_hash": pl.String, "file_size": pl.Int64,
    "content_type": pl.String, "width": pl.Int32, "height": pl.Int32, "error": pl.String,
}


@dataclass(frozen=True)
class HashTask:
    rels: list[str]
    paths: list[str]
    max_bytes: int = 50 * 1024 * 1024


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


def _hash_one(path: str, max_bytes: int) -> tuple[str, int, bytes]:
    h = hashlib.sha256()
    size = 0
    head = b""
    with open(path, "rb", buffering=0) as f:
        if os.fstat(f.fileno()).st_size > max_bytes:
            raise ValueError(f"larger than the {max_bytes} byte limit")
        while block := f.read(BLOCK):
            if not head:
                head = block[:64]
            h.update(block)
            size += len(block)
    return h.hexdigest(), size, head


def hash_images(task: HashTask) -> pl.DataFrame:
    """SHA-256, size, content type and PNG dimensions of each file, reading each once."""
    cols: dict[str, list[Any]] = {k: [] for k in HASH_SCHEMA}
    for rel, path in zip(task.rels, task.paths, strict=True):
        digest: str | None = None
        size: int | None = None
        ctype = width = height = error = None
        try:
            digest, size, head = _hash_one(path, task.max_bytes)
            ctype, width, height = sniff(head)
        except (OSError, ValueError) as exc:
            error = getattr(exc, "strerror", None) or str(exc)
        for key, value in zip(HASH_SCHEMA, (rel, digest, size, ctype, width, height, error), strict=True):
            cols[key].append(value)
    return pl.DataFrame(cols, schema=HASH_SCHEMA)


def storage_path(content_hash: str) -> str:
    return f"sha256/{content_hash[:2]}/{content_hash[2:4]}/{content_hash}.png"


def _copy_atomically(src: str, dst: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as out, open(src, "rb") as inp:
            shutil.copyfileobj(inp, out, BLOCK)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class LocalStore:
    """A folder holding one file per distinct screenshot."""

    storage_type = "local"

    def __init__(self, root: Path, link: bool = True) -> None:
        self.root = root
        self.link = link

    def missing(self, hashes: list[str]) -> list[str]:
        """The hashes not yet in the store."""
        root = str(self.root)
        return [h for h in hashes if not os.path.isfile(os.path.join(root, storage_path(h)))]

    def put(self, content_hash: str, src: str) -> None:
        """Hard-link the screenshot into the store (copy when across file systems, or when link is off).

        A hard link shares the scrape's file: a scraper that later rewrites that file in place would
        change the stored bytes too. `--image-link copy` trades speed for a store nothing can touch.
        The folder is created only when the first attempt finds it missing: one system call per
        screenshot in the common case.
        """
        dst = os.path.join(str(self.root), storage_path(content_hash))
        try:
            try:
                self._place(src, dst)
            except FileNotFoundError:
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                self._place(src, dst)
        except OSError as exc:
            raise StorageError(f"cannot store screenshot {src} in {self.root}: {exc.strerror or exc}") from exc

    def _place(self, src: str, dst: str) -> None:
        if not self.link:
            if not os.path.exists(dst):
                if not os.path.isdir(os.path.dirname(dst)):
                    raise FileNotFoundError(dst)
                _copy_atomically(src, Path(dst))
            return
        try:
            os.link(src, dst)
        except FileExistsError:
            return
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                raise
            if not os.path.exists(dst):
                _copy_atomically(src, Path(dst))

    def put_many(self, items: Iterable[tuple[str, str, str | None]]) -> dict[str, str]:
        """Store (hash, source path, content type) items; a local failure (disk full) fails the load."""
        for content_hash, src, _ in items:
            self.put(content_hash, src)
        return {}

    def sizes(self, hashes: list[str]) -> dict[str, int]:
        """Size of each stored screenshot; absent ones are left out."""
        found: dict[str, int] = {}
        for h in hashes:
            try:
                found[h] = (self.root / storage_path(h)).stat().st_size
            except OSError:
                continue
        return found

    def local_path(self, content_hash: str) -> str | None:
        return str(self.root / storage_path(content_hash))
