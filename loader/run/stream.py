"""What happens to each chunk of a load as it arrives from the workers.

The rows, files and screenshot references go to the staging tables on the `db` lane; new
screenshots go into the image store on the `store` lane; the manifest learns their hashes. The
order of the stages themselves stays in pipeline.py.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import polars as pl

from loader.progress import Progress
from loader.report import Report
from loader.run import workers
from loader.run.manifest import REJECT_SCHEMA, Manifest
from loader.scan import discover, frame, images, parse
from loader.settings import Settings
from loader.stores.local import LocalStore, Sink

if TYPE_CHECKING:
    from loader.db.process import Transaction
    from loader.stores import Store


REPAIR_SLICE = 50_000  # screenshots asked of the store at a time by repair_store
OPEN_PATIENCE = 1.0  # seconds a chunk for the workers waits for the transaction to begin (sink())


class ChunkStream:
    """One attempt's chunks as they arrive: stage them, store their screenshots; pipeline drives it."""

    def __init__(self, settings: Settings, plan: discover.Plan, todo: pl.DataFrame, tx: Transaction,
                 rep: Report, man: Manifest, store: Store, progress: Progress, lanes: workers.Lanes) -> None:
        self.settings = settings
        self.plan = plan
        self.todo = todo
        self.tx = tx
        self.rep = rep
        self.man = man
        self.store = store
        self.progress = progress
        self.lanes = lanes
        self.canon: list[pl.DataFrame] = []
        self.hashes: list[pl.DataFrame] = []
        self.keys: list[pl.DataFrame] = []   # frame.WINNER_COLUMNS of each staged row, per chunk
        self.staged: list[pl.Series] = []    # screenshot paths this attempt staged, per chunk (for repair_store)
        self.ok_files: list[pl.Series] = []  # search files this attempt loaded, per chunk
        self.rejected: list[tuple[str, str, str]] = []  # (rel, code, detail) of those it rejected
        self.shot_of: list[pl.DataFrame] = []  # (file_order, image_rel): each loaded file's screenshot
        # Screenshots changed behind unchanged search files (evidence.py): a --full run neither
        # stores their new bytes nor records their new hash, so the store and the manifest keep
        # what was loaded.
        self.keep_loaded: frozenset[str] = frozenset()
        self._flushing = threading.Event()  # set while an early flush of the store runs (flush_early)
        self._sink: Sink | bool | None = False  # the local store's sink, once sink() has asked for it

    def parse_tasks(self, pool_size: int) -> Iterator[parse.ParseTask]:
        """One task per chunk. In-process (a pool of one), the chunk's screenshots are hashed by as
        many threads as workers were allowed: the other cores are idle then."""
        size = self.settings.chunk_files
        hash_threads = self.settings.workers if pool_size == 1 else 1
        for start in range(0, self.todo.height, size):
            part = self.todo.slice(start, size)
            rels = part["rel"].to_list()
            known = self.man.known_hashes({os.path.dirname(r) for r in rels})
            sink = self.sink() if pool_size > 1 else self.sink_in_process() if hash_threads > 1 else None
            roots = images.Roots(self.plan.roots, self.plan.depth, self.settings.max_image_bytes, known,
                                 sink=sink, withheld=self.keep_loaded)
            yield parse.ParseTask(file_ids=part["file_id"].to_list(), paths=self.plan.paths(part), rels=rels,
                                  source_timezone=self.settings.source_timezone,
                                  max_json_bytes=self.settings.max_json_bytes,
                                  want_canon=self.settings.verify_writes != "off", roots=roots,
                                  hash_threads=hash_threads, keep_loaded=self.keep_loaded)

    def sink(self) -> Callable[[str, bytes | memoryview, str], bool | None] | None:
        """How worker processes store the screenshots they hash: themselves, from the bytes in hand,
        into a local store in copy mode once the transaction has begun (a load that cannot reach
        its database writes nothing into the store); else None, and the store lane does it.

        They wait up to OPEN_PATIENCE for the transaction (a first load begins it beside the first
        chunks, ~40 ms): the lane would otherwise store their first chunks alone, one thread against
        two workers."""
        sink = self._local_sink()
        return sink if sink is not None and self.lanes.opened(OPEN_PATIENCE) else None

    def sink_in_process(self) -> Callable[[str, bytes | memoryview, str], bool | None] | None:
        """The same for a load run in-process, whose hashing threads store what they hash: asked at
        the chunk's first screenshot, once its search files are parsed, not before (the transaction
        begins meanwhile). Stored by the lane after the hashing instead, the 515-file load was
        ~0.06 s slower: one thread copied what two had read, and the sync before the commit had it
        all left to write, where now the store's early flush overlaps the COPY and the merge."""
        sink = self._local_sink()
        return _WhenOpen(sink, self.lanes) if sink is not None else None

    def _local_sink(self) -> Sink | None:
        if self.settings.dry_run or not isinstance(self.store, LocalStore):
            return None
        if self._sink is False:  # decided once per load: it reads the mount table
            self._sink = self.store.sink(str(self.plan.roots[0]))
        return self._sink if isinstance(self._sink, Sink) else None

    def take_chunk(self, chunk: frame.Prepared) -> None:
        """Stage the chunk's rows; stage and store its new screenshots."""
        self.rep.add_rejects(chunk.rejects)
        self.rejected += chunk.rejects
        self.rep.add_warnings(chunk.warnings)
        self.rep.files_loaded += chunk.files.height
        self.rep.rows_staged += chunk.rows
        self.rep.rows_parsed += chunk.parsed
        self.keys.append(chunk.keys)
        self.ok_files.append(chunk.files["file_id"])
        shots = chunk.images if chunk.images is not None else pl.DataFrame(schema=images.IMAGE_SCHEMA)
        file_images = shots.filter(pl.col("image_rel").is_not_null()).select("file_order", "image_rel")
        if chunk.canon is not None:
            self.canon.append(chunk.canon.join(file_images, on="file_order", how="left"))
        self.lanes.submit(self.lanes.db, self.copy_chunk, chunk.rows_csv)
        self.shot_of.append(file_images)
        # A screenshot shared with an earlier chunk is staged again; the merge uses one row per
        # path, and the store already has it: cheaper than a set of every path seen so far.
        fresh = shots.filter(pl.col("image_rel").is_not_null()).unique(subset="image_rel", keep="first",
                                                                       maintain_order=True)
        if self.keep_loaded:
            fresh = fresh.filter(~pl.col("image_rel").is_in(list(self.keep_loaded)))
        if self.man.images.height:  # else repair_store has nothing to repair
            self.staged.append(fresh["image_rel"])
        by_workers = fresh.filter(pl.col("stored")).height
        self.rep.count("images_stored", by_workers)
        if fresh["stored"].is_not_null().any():  # the workers stored this chunk's screenshots
            checkpoint(self.settings, "storing")
        if by_workers and not self._flushing.is_set():
            self._flushing.set()
            self.lanes.submit(self.lanes.store, self.flush_early)
        self.man.record_hashes(fresh.filter(pl.col("error").is_null()))
        self.stage_images(fresh)
        if not self.settings.dry_run:
            self.man.save(force=False)
        self.progress.advance(len(chunk.rejects) + chunk.files.height,
                              f"{self.rep.rows_staged} rows staged")
        self.lanes.check()

    def copy_chunk(self, rows_csv: bytes) -> None:
        """On the db lane: COPY one chunk's rows (typed, with meta, raw and screenshot hash) into
        staging; chunks may repeat keys, settle() lists the losers."""
        with self.rep.phase("copy"):
            if rows_csv:
                self.tx.stage("stage_search_results", frame.ROW_COLUMNS, rows_csv)
        checkpoint(self.settings, "copying")

    def settle(self) -> int:
        """After the last chunk: list the staged rows another row of the load beats, so the merge
        reads one row per key with no sort; returns how many rows are left (the distinct keys)."""
        with self.rep.phase("settle"):
            keys = pl.concat(self.keys, rechunk=False) if self.keys else None  # not a copy of them all
            self.keys = []
            losers = frame.superseded(keys) if keys is not None else None
            if losers is not None and losers.height:
                self.tx.stage("stage_superseded", frame.SUPERSEDED_COLUMNS,
                              frame.to_csv(losers, frame.SUPERSEDED_COLUMNS))
        self.rep.rows_distinct = (keys.height - losers.height) if keys is not None and losers is not None else 0
        return self.rep.rows_distinct

    def stage_images(self, shots: pl.DataFrame) -> None:
        """Report unreadable and non-PNG screenshots; queue the rest for the store and staging."""
        bad = shots.filter(pl.col("error").is_not_null())
        if bad.height:
            self.rep.add_warnings([(r, "unreadable_image", f"screenshot {r}: {e}; loaded without image")
                                   for r, e in zip(bad["image_rel"], bad["error"], strict=True)])
        ok = shots.filter(pl.col("error").is_null())
        odd = ok.filter(pl.col("content_type").fill_null("") != "image/png")
        if odd.height:
            self.rep.add_warnings([(r, "not_a_png", f"screenshot {r} is not a PNG ({t or 'unknown content'}); "
                                    "stored with its real content type") for r, t in
                                   zip(odd["image_rel"], odd["content_type"], strict=True)])
        if not ok.height:
            return
        if self.settings.verify_writes != "off":
            self.hashes.append(ok.select("image_rel", "content_hash"))
        if self.store.partial_failures:
            self.lanes.submit(self.lanes.store, self.store_and_copy, ok)
        else:  # the rows can be staged now; the commit waits for the store instead
            self.lanes.submit(self.lanes.db, self.copy_images, self.image_rows(ok, {}))
            left = ok.filter(pl.col("stored").is_null())  # not stored by a worker
            if left.height and not self.settings.dry_run:
                self.lanes.submit(self.lanes.store, self.store_only, left)

    def store_and_copy(self, ok: pl.DataFrame) -> None:
        """On the store lane: put the screenshots into the store, then queue their rows for COPY."""
        failed: dict[str, str] = {}
        if not self.settings.dry_run:
            with self.rep.phase("store"):
                failed = self.store_images(ok)
        rows = self.image_rows(ok, failed)
        self.lanes.submit(self.lanes.db, self.copy_images, rows)

    def store_only(self, ok: pl.DataFrame) -> None:
        with self.rep.phase("store"):
            self.store_images(ok)

    def flush_early(self) -> None:
        """On the store lane: write what the workers stored so far to disk now, while they parse on,
        rather than all of it in the sync before the commit (which still makes sure of it all)."""
        try:
            assert isinstance(self.store, LocalStore)
            self.store.sync()
        finally:
            self._flushing.clear()

    def copy_images(self, rows: pl.DataFrame) -> None:
        with self.rep.phase("copy"):
            if rows.height:
                self.tx.stage("stage_image_assets", frame.IMAGE_COLUMNS, frame.to_csv(rows, frame.IMAGE_COLUMNS))

    def image_rows(self, ok: pl.DataFrame, failed: dict[str, str]) -> pl.DataFrame:
        """image_assets rows; a screenshot whose upload failed is recorded as 'pending'."""
        return ok.with_columns(
            images.storage_paths(pl.col("content_hash")).alias("storage_path"),
            pl.when(pl.col("content_hash").is_in(list(failed))).then(pl.lit("pending"))
            .otherwise(pl.lit(self.store.storage_type)).alias("storage_type"),
        )

    def store_images(self, ok: pl.DataFrame) -> dict[str, str]:
        """Put each screenshot not yet in the store into it; returns {hash: reason} of failures."""
        distinct = ok.unique(subset="content_hash", keep="first")
        stored, failed = self.store.store_many(
            zip(distinct["content_hash"], distinct["path"], distinct["content_type"], strict=True))
        if isinstance(self.store, LocalStore):  # a copy made after a rewrite must not stand
            self.store.check_sources(zip(distinct["content_hash"], distinct["path"], distinct["size"],
                                         distinct["mtime_ns"], strict=True))
        checkpoint(self.settings, "storing")
        self.rep.count("images_stored", stored)
        if failed:
            self.rep.count("images_failed", len(failed))
            self.rep.add_warnings([(h, "upload_failed", f"screenshot {h[:12]}… not stored ({why}); its rows "
                                    "are loaded and the next run uploads it") for h, why in failed.items()])
        return failed

    def repair_store(self) -> None:
        """Screenshots of skipped (unchanged) files must still be in the store: put back any lost.

        Only a source whose size and mtime still match its recorded hash is used. Their rows are
        staged again too, so that an image_assets row left 'pending' by a failed upload becomes
        stored.
        """
        if self.settings.dry_run or not self.man.images.height:
            return
        staged = pl.concat(self.staged) if self.staged else pl.Series(dtype=pl.String)
        rest = pl.col("error").is_null() & ~pl.col("image_rel").is_in(staged.implode())
        with self.rep.phase("store"):
            hashes = self.man.images.lazy().filter(rest).select(pl.col("content_hash").unique()).collect()
            missing: list[str] = []
            for part in hashes.iter_slices(REPAIR_SLICE):  # a million hashes as one Python list: ~100 MB
                missing += self.store.missing(part["content_hash"].to_list())
            lost = self.man.images.filter(rest & pl.col("content_hash").is_in(missing))
            lost = lost.filter(pl.Series([_unchanged(p, s, m) for p, s, m in
                                          lost.select("path", "size", "mtime_ns").iter_rows()], dtype=pl.Boolean))
            if lost.height:
                failed = self.store_images(lost)
                self.copy_images(self.image_rows(lost, failed))

    def outcomes(self) -> pl.DataFrame:
        """This attempt's files with their state (pending until the commit is confirmed, or rejected),
        the reason of each reject, and the screenshot of each loaded file."""
        loaded = pl.concat(self.ok_files) if self.ok_files else pl.Series(dtype=pl.Int64)
        reasons = pl.DataFrame(self.rejected, schema=REJECT_SCHEMA, orient="row").unique(subset="rel")
        shot_schema = pl.Schema({"file_id": pl.Int64, "screenshot": pl.String})
        shots = (pl.concat([f.rename({"file_order": "file_id", "image_rel": "screenshot"}).cast(shot_schema)
                            for f in self.shot_of])  # one row per loaded file: each is in one chunk
                 if self.shot_of else pl.DataFrame(schema=shot_schema))
        return self.todo.select(
            "rel", "size", "mtime_ns", "file_id",
            pl.when(pl.col("file_id").is_in(loaded.implode())).then(pl.lit("pending"))
            .otherwise(pl.lit("rejected")).alias("state"),
        ).join(reasons, on="rel", how="left", maintain_order="left").join(
            shots, on="file_id", how="left", maintain_order="left").drop("file_id")


def _unchanged(path: str, size: int, mtime_ns: int) -> bool:
    """Whether a screenshot still has the size and mtime its recorded hash was computed at."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    return (st.st_size, st.st_mtime_ns) == (size, mtime_ns)


def checkpoint(settings: Settings, name: str) -> None:
    """Test-only: die here (SIGKILL, no clean-up at all) when the settings name this point."""
    if settings.test_kill_at == name:
        os.kill(os.getpid(), signal.SIGKILL)


class _WhenOpen:
    """A chunk's sink for in-process hashing threads: it stores only once the transaction has
    begun, waiting for that at most OPEN_PATIENCE once per chunk; after that, None (the lane
    stores the rest, gated on the begin). A wait for the tag's lock can be long."""

    def __init__(self, sink: Sink, lanes: workers.Lanes) -> None:
        self.sink = sink
        self.lanes = lanes
        self.given_up = False

    def __call__(self, content_hash: str, data: bytes | memoryview, src: str) -> bool | None:
        if self.given_up:
            return None
        if not self.lanes.opened(OPEN_PATIENCE):
            self.given_up = True
            return None
        return self.sink(content_hash, data, src)
