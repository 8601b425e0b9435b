"""The manifest: what earlier runs of one (states folder, tag) already did, so a re-run redoes little.

One Parquet file (compact and fast for a million files): the file and screenshot tables stacked
with a `kind` column, and a JSON header in the file's key-value metadata.

It is a cache, never the truth. File outcomes count as committed only when the database's
`load_runs` holds the load id they were recorded under; a missing, stale, truncated or corrupt
manifest is reported and rebuilt from scratch, which costs time but never a wrong load. It is
written atomically (temporary file, fsync, rename) so a kill never leaves half of one, and it
holds no secret: the target database is named by a digest of its DSN without the password.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import stat
import tempfile
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from loader import procs
from loader.errors import LoadError
from loader.report import write_atomically

log = logging.getLogger("pharmload")
VERSION = 3  # 3: rejected files keep their reason; a version 2 manifest is read as one without reasons
# `screenshot`: the image_rel of the screenshot a loaded file refers to (null in older manifests, or
# when it has none), so that a screenshot changed behind an unchanged file is noticed (evidence.py).
FILE_SCHEMA: dict[str, Any] = {"rel": pl.String, "size": pl.Int64, "mtime_ns": pl.Int64, "state": pl.String,
                               "code": pl.String, "detail": pl.String, "screenshot": pl.String}
REJECT_SCHEMA: dict[str, Any] = {"rel": pl.String, "code": pl.String, "detail": pl.String}
# Reasons outside the file's bytes (permissions, a vanished file): such files are always tried again.
RETRIED_CODES = ("unreadable",)
IMAGE_SCHEMA: dict[str, Any] = {
    "image_rel": pl.String, "path": pl.String, "size": pl.Int64, "mtime_ns": pl.Int64, "content_hash": pl.String,
    "file_size": pl.Int64, "content_type": pl.String, "width": pl.Int32, "height": pl.Int32, "error": pl.String,
}
KNOWN_COLUMNS = ("size", "mtime_ns", "content_hash", "file_size", "content_type", "width", "height")
ROW_GROUP = 50_000  # rows: open() streams the file a row group at a time
SAVE_EVERY = 2.0  # seconds between progress saves while a load streams, at least
# At most this share of the main process's time goes to progress saves. Each rewrites every hash
# recorded so far (~1 s at a million screenshots): at a tenth, a million-file load spent 19 s of
# its main process on them. A crash loses the hashing done since the last save, at most 20 times
# as long as that save took.
SAVE_SHARE = 0.05
SPILL_PREFIX = "pharmload-hashes-"  # then the loader's PID: the temporary folder of its recorded hashes
STALE_SPILL = 3600.0  # seconds untouched before a gone load's spill folder is removed (new_spill)


@dataclass
class Manifest:
    """Files by fingerprint with their outcome; screenshots by fingerprint with their hash."""

    path: Path
    states_dir: str
    tag: str
    target: str
    committed: str | None = None        # load id whose file outcomes the database confirmed
    pending: str | None = None          # load id of a load that may or may not have committed
    phase: str = "new"
    parse_key: str | None = None         # Settings.parse_key of the load that recorded the outcomes
    files: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=FILE_SCHEMA))
    images: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=IMAGE_SCHEMA))
    _saved_at: float = 0.0
    _interval: float = SAVE_EVERY
    # Hashes recorded by this run, spilled to Parquet files a chunk at a time: held in memory, a
    # million screenshots' rows were ~250 MB, a quarter of a million-file load's peak.
    _new: list[Path] = field(default_factory=list)
    _spill: Path | None = None
    _remove_spill: Callable[[], object] | None = None  # the weakref.finalize that removes _spill
    _by_folder: dict[str, pl.DataFrame] | None = None
    @classmethod
    def open(cls, path: Path, states_dir: Path, tag: str, target: str) -> tuple[Manifest, str | None]:
        """The manifest at path, or an empty one and the reason the old one could not be used."""
        fresh = cls(path=path, states_dir=str(states_dir.resolve()), tag=tag, target=target)
        if not path.exists():
            return fresh, None
        try:
            with open(path, "rb") as f:
                data = f.read()
            header = orjson.loads(pl.read_parquet_metadata(io.BytesIO(data))["pharmload"])
            if not isinstance(header, dict) or header.get("version") not in (2, VERSION):
                return fresh, "unknown manifest version"
            if (header["states_dir"], header["tag"], header["target"]) != (fresh.states_dir, tag, target):
                return fresh, "manifest is for another folder, tag or database"
            # Streamed a row group at a time, each kind on its own: reading the whole table at once
            # took ~2.5x its size in memory (~700 MB at a million files).
            table = pl.scan_parquet(io.BytesIO(data))
            table = table.with_columns(pl.lit(None, pl.String).alias(c) for c in ("code", "detail", "screenshot")
                                       if c not in table.collect_schema().names())
            files = (table.filter(pl.col("kind") == "file").select(list(FILE_SCHEMA)).cast(pl.Schema(FILE_SCHEMA))
                     .collect(engine="streaming"))
            images = (table.filter(pl.col("kind") == "image").rename({"rel": "image_rel"})
                      .select(list(IMAGE_SCHEMA)).cast(pl.Schema(IMAGE_SCHEMA))
                      .filter(pl.col("image_rel").is_last_distinct())  # see all_images
                      .collect(engine="streaming"))
            fresh.committed, fresh.pending, fresh.phase = header["committed"], header["pending"], header["phase"]
            fresh.parse_key = header.get("parse_key")
            fresh.files, fresh.images = files, images
        except (OSError, ValueError, KeyError, TypeError, pl.exceptions.PolarsError) as exc:
            return cls(path=path, states_dir=fresh.states_dir, tag=tag, target=target), (
                f"manifest unreadable ({type(exc).__name__}: {str(exc)[:80]})")
        return fresh, None

    def save(self, force: bool = True) -> None:
        """Write atomically; with force=False, only if the last save is old enough to be worth redoing."""
        now = time.monotonic()
        if not force and now - self._saved_at < self._interval:
            return
        header = {"version": VERSION, "states_dir": self.states_dir, "tag": self.tag, "target": self.target,
                  "committed": self.committed, "pending": self.pending, "phase": self.phase,
                  "parse_key": self.parse_key}
        # Streamed into the file a row group at a time: the two kinds concatenated in memory were a
        # copy of the whole manifest (~400 MB at a million files, on top of the manifest itself).
        table = pl.concat([
            self.files.lazy().with_columns(pl.lit("file").alias("kind")),
            *(part.rename({"image_rel": "rel"}).with_columns(pl.lit("image").alias("kind"))
              for part in (self.images.lazy(), *self._recorded())),
        ], how="diagonal")
        # lz4 without statistics: half of zstd's time, at twice its (still small) size.
        write_atomically(self.path, lambda f: table.sink_parquet(
            f, compression="lz4", statistics=False, row_group_size=ROW_GROUP,
            metadata={"pharmload": orjson.dumps(header).decode()}, engine="streaming"))
        spent = time.monotonic() - now
        self._saved_at = time.monotonic()
        # Progress saves cost time proportional to the scrape: keep them to SAVE_SHARE of the run.
        self._interval = max(SAVE_EVERY, spent / SAVE_SHARE)

    def reconcile(self, committed: Callable[[str], bool]) -> str | None:
        """Bring the manifest in line with the database; returns what had to be dropped, if anything.

        A pending load that committed (killed after the commit, before the manifest was saved) is
        promoted; one that did not is forgotten. A committed load the database does not know (the
        database was reset, the tag deleted) voids every recorded file outcome.
        """
        if self.pending is not None:
            if committed(self.pending):
                self.promote(self.pending)
            else:
                self.drop_pending()
        if self.committed is not None and not committed(self.committed):
            self.committed = None
            self.forget_files()
            return "the database does not hold the manifest's last load"
        return None

    def loaded_files(self) -> pl.DataFrame:
        """Fingerprints of the files a confirmed load committed (rel, size, mtime_ns)."""
        return self.files.filter(pl.col("state") == "loaded").select("rel", "size", "mtime_ns")

    def remembered_rejects(self, todo: pl.DataFrame, parse_key: str) -> pl.DataFrame:
        """The files of todo that a confirmed load rejected and that have not changed since (same
        size and mtime, same parse settings): their reason is reported again without reading them.

        Returns todo's columns plus code and detail."""
        if parse_key != self.parse_key:
            return todo.clear().with_columns(pl.lit(None, pl.String).alias(c) for c in ("code", "detail"))
        rejected = self.files.filter((pl.col("state") == "rejected") & pl.col("code").is_not_null()
                                     & ~pl.col("code").is_in(RETRIED_CODES))
        return todo.join(rejected.select("rel", "size", "mtime_ns", "code", "detail"),
                         on=["rel", "size", "mtime_ns"], how="inner", maintain_order="left")

    def forget_files(self) -> None:
        self.files = pl.DataFrame(schema=FILE_SCHEMA)

    def promote(self, load_id: str) -> None:
        """The database confirmed load_id: its pending files are now committed."""
        self.files = self.files.with_columns(
            pl.when(pl.col("state") == "pending").then(pl.lit("loaded")).otherwise(pl.col("state")).alias("state"))
        self.committed, self.pending, self.phase = load_id, None, "committed"

    def drop_pending(self) -> None:
        """The pending load never committed: its outcomes are void."""
        self.files = self.files.filter(pl.col("state") == "loaded")
        self.pending = None

    def record_files(self, outcomes: pl.DataFrame) -> None:
        """Upsert (rel, size, mtime_ns, state, code, detail, screenshot) rows for this load's files."""
        outcomes = outcomes.select(list(FILE_SCHEMA)).cast(pl.Schema(FILE_SCHEMA))
        if not self.files.height:  # a first load: no copy of a million rows into an empty table
            self.files = outcomes
            return
        self.files = pl.concat([self.files.join(outcomes, on="rel", how="anti"), outcomes], rechunk=False)

    def known_hashes(self, folders: set[str]) -> pl.DataFrame | None:
        """Hash facts of earlier runs' screenshots in these folders (image_rel, size, mtime, hash,
        file size, type, width, height), for workers to reuse when size and mtime still match.

        The earlier screenshots are split by folder once, so each chunk's look-up costs its own
        size, not the size of the whole manifest."""
        if not self.images.height:
            return None
        if self._by_folder is None:
            ok = self.images.filter(pl.col("error").is_null()).with_columns(
                pl.col("image_rel").str.replace(r"/?[^/]*$", "").alias("folder"))
            self._by_folder = {str(k[0]): v.select("image_rel", *KNOWN_COLUMNS)
                               for k, v in ok.partition_by("folder", as_dict=True).items()}
        parts = [self._by_folder[f] for f in folders if f in self._by_folder]
        return pl.concat(parts) if parts else None

    def record_hashes(self, hashed: pl.DataFrame) -> None:
        """Remember this run's screenshot hashes (merged into the manifest when it is saved), in a
        temporary folder (TMPDIR's) that goes with this object or the process."""
        if not hashed.height:
            return
        try:
            if self._spill is None:
                self._spill = new_spill()
                self._remove_spill = weakref.finalize(self, shutil.rmtree, self._spill, True)
            part = self._spill / f"{len(self._new):06d}.parquet"
            hashed.select(list(IMAGE_SCHEMA)).cast(pl.Schema(IMAGE_SCHEMA)).write_parquet(
                part, compression="lz4", statistics=False)
        except OSError as exc:
            raise LoadError(f"cannot keep this load's screenshot hashes in {self._spill or tempfile.gettempdir()} "
                            f"({exc.strerror or exc}); nothing was committed: free some space there or set "
                            "TMPDIR to another folder, then run the load again") from exc
        self._new.append(part)

    def close(self) -> None:
        """Remove this run's spill folder now, its hashes saved or not wanted. Not left to the
        finalizer: the CLI leaves by os._exit, where none runs, and a failed load's traceback keeps
        this object alive until then."""
        if self._remove_spill is not None:
            self._remove_spill()
        self._spill, self._new, self._remove_spill = None, [], None

    def _recorded(self) -> list[pl.LazyFrame]:
        """This run's recorded hashes, in the order recorded (scanned from their files)."""
        return [pl.scan_parquet(self._new, schema=IMAGE_SCHEMA)] if self._new else []

    def all_images(self) -> pl.DataFrame:
        """Earlier runs' screenshots, then this run's: for a path listed twice, the later row holds.

        Not deduplicated here: that copied every screenshot row at each save, a few hundred MB at
        a million files. open() drops the superseded rows once, before a load begins."""
        return pl.concat([self.images.lazy(), *self._recorded()]).collect() if self._new else self.images


def new_spill() -> Path:
    """A temporary folder for one load's recorded hashes, named after its process. Made after
    removing what loads killed outright (SIGKILL, a power loss) left in the same place, ~70 MB per
    million screenshots each: a cron job's killed runs would otherwise pile them up in TMPDIR."""
    tmp = Path(tempfile.gettempdir())
    remove_stale_spills(tmp)
    return Path(tempfile.mkdtemp(prefix=f"{SPILL_PREFIX}{os.getpid()}-", dir=tmp))


def remove_stale_spills(tmp: Path, now: float | None = None) -> list[Path]:
    """Remove this user's spill folders in tmp whose load is gone: its process no longer runs and
    nothing was written there for STALE_SPILL seconds (a process of another PID namespace sharing
    the folder looks gone; a running load writes a file per chunk). Folders named without a PID,
    by versions before 2026-12-04 (whose failed loads left them behind), go by their age alone.
    Returns what it removed."""
    now = time.time() if now is None else now
    removed = []
    for entry in tmp.glob(f"{SPILL_PREFIX}*"):
        pid, dash, _ = entry.name[len(SPILL_PREFIX):].partition("-")
        try:
            st = entry.lstat()
            spared = dash and (not pid.isdigit() or procs.alive(int(pid)))  # a live load's, or not named by one
            if spared or not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or now - st.st_mtime < STALE_SPILL:
                continue
        except OSError:
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed


def of_tag(folder: Path, tag: str) -> list[tuple[Path, str]]:
    """The manifest files in folder (one per states folder and tag) whose header names this tag,
    with the states folder each is for; for `drop`. A file that cannot be read as a manifest is
    left out."""
    found = []
    for path in sorted(folder.glob("*.parquet")):
        try:
            header = orjson.loads(pl.read_parquet_metadata(path)["pharmload"])
            if isinstance(header, dict) and header.get("tag") == tag:
                found.append((path, str(header.get("states_dir"))))
        except (OSError, ValueError, KeyError, TypeError, pl.exceptions.PolarsError):
            continue
    return found
