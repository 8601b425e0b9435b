"""The only module that knows the order of the stages of a load.

plan -> parse (workers) -> resolve screenshots -> hash (workers) -> clean + dedup -> COPY -> store
images -> one merge -> run record -> commit. Parsing, hashing and COPY overlap: chunks of rows are
staged as they arrive, and the merge deduplicates across chunks, so memory stays bounded by the
chunk size rather than by the size of the scrape.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import polars as pl

from loader import db, discover, frame, images, parse, report, verify, workers
from loader.backend import database, image_store
from loader.errors import LoadError, PharmloadError
from loader.manifest import Manifest, manifest_path
from loader.merge import LoadTransaction
from loader.metrics import write_metrics
from loader.progress import Progress
from loader.report import Report
from loader.settings import Settings

if TYPE_CHECKING:
    from loader.backend import Store

log = logging.getLogger("pharmload")


class _Load:
    """One attempt at a load while it runs; `_attempt()` below drives it."""

    def __init__(self, settings: Settings, plan: discover.Plan, todo: pl.DataFrame, tx: LoadTransaction,
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
        self.staged: list[pl.Series] = []    # screenshot paths this attempt staged, per chunk
        self.ok_files: list[pl.Series] = []  # search files this attempt loaded, per chunk

    def parse_tasks(self) -> Iterator[parse.ParseTask]:
        size = self.settings.chunk_files
        for start in range(0, self.todo.height, size):
            part = self.todo.slice(start, size)
            rels = part["rel"].to_list()
            known = self.man.known_hashes({os.path.dirname(r) for r in rels}) if self.man.images.height else {}
            roots = images.Roots(self.plan.roots, self.plan.depth, self.settings.max_image_bytes, known)
            yield parse.ParseTask(file_ids=part["file_id"].to_list(), paths=self.plan.paths(part), rels=rels,
                                  source_timezone=self.settings.source_timezone,
                                  max_json_bytes=self.settings.max_json_bytes,
                                  want_canon=self.settings.verify_writes != "off", roots=roots)

    def take_chunk(self, chunk: frame.Prepared) -> None:
        """Stage the chunk's rows, files and screenshot references; store its new screenshots."""
        self.rep.add_rejects(chunk.rejects)
        self.rep.add_warnings(chunk.warnings)
        self.rep.files_loaded += chunk.files.height
        self.rep.rows_staged += chunk.rows
        self.ok_files.append(chunk.files["file_id"])
        shots = chunk.images if chunk.images is not None else pl.DataFrame(schema=images.IMAGE_SCHEMA)
        file_images = shots.filter(pl.col("image_rel").is_not_null()).select("file_order", "image_rel")
        if chunk.canon is not None:
            self.canon.append(chunk.canon.join(file_images, on="file_order", how="left"))
        self.lanes.submit(self.lanes.db, self.copy_chunk, chunk.rows_csv, chunk.files_csv, file_images)
        # A screenshot shared with an earlier chunk is staged again; the merge uses one row per
        # path, and the store already has it: cheaper than a set of every path seen so far.
        fresh = shots.filter(pl.col("image_rel").is_not_null()).unique(subset="image_rel", keep="first",
                                                                       maintain_order=True)
        self.staged.append(fresh["image_rel"])
        self.man.record_hashes(fresh.filter(pl.col("error").is_null()))
        self.stage_images(fresh)
        if not self.settings.dry_run:
            self.man.save(force=False)
        self.progress.advance(len(chunk.rejects) + chunk.files.height,
                              f"{self.rep.rows_staged} rows staged")
        self.lanes.check()

    def copy_chunk(self, rows_csv: bytes, files_csv: bytes, file_images: pl.DataFrame) -> None:
        """On the db lane: COPY one chunk into the staging tables."""
        with self.rep.phase("copy"):
            self.tx.copy_chunk(rows_csv, files_csv, file_images)
        checkpoint(self.settings, "copying")

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
            if not self.settings.dry_run:
                self.lanes.submit(self.lanes.store, self.store_only, ok)

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

    def copy_images(self, rows: pl.DataFrame) -> None:
        with self.rep.phase("copy"):
            self.tx.copy_images(rows)

    def image_rows(self, ok: pl.DataFrame, failed: dict[str, str]) -> pl.DataFrame:
        """image_assets rows; a screenshot whose upload failed is recorded as 'pending'."""
        return ok.with_columns(
            pl.col("content_hash").map_elements(images.storage_path, return_dtype=pl.String).alias("storage_path"),
            pl.when(pl.col("content_hash").is_in(list(failed))).then(pl.lit("pending"))
            .otherwise(pl.lit(self.store.storage_type)).alias("storage_type"),
        )

    def store_images(self, ok: pl.DataFrame) -> dict[str, str]:
        """Put each screenshot not yet in the store into it; returns {hash: reason} of failures."""
        distinct = ok.unique(subset="content_hash", keep="first")
        missing = set(self.store.missing(distinct["content_hash"].to_list()))
        todo = distinct.filter(pl.col("content_hash").is_in(list(missing)))
        failed = self.store.put_many(zip(todo["content_hash"], todo["path"], todo["content_type"], strict=True))
        checkpoint(self.settings, "storing")
        self.rep.count("images_stored", len(missing) - len(failed))
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
        rest = self.man.images.filter(pl.col("error").is_null() & ~pl.col("image_rel").is_in(staged.implode()))
        with self.rep.phase("store"):
            missing = set(self.store.missing(rest["content_hash"].unique().to_list()))
            lost = rest.filter(pl.col("content_hash").is_in(list(missing)))
            lost = lost.filter(pl.Series([_unchanged(p, s, m) for p, s, m in
                                          lost.select("path", "size", "mtime_ns").iter_rows()], dtype=pl.Boolean))
            if lost.height:
                failed = self.store_images(lost)
                with self.rep.phase("copy"):
                    self.tx.copy_images(self.image_rows(lost, failed))

    def expected(self) -> pl.DataFrame:
        """For --verify-writes: the row per key this load meant to write, with its content hash."""
        schema = pl.Schema({"image_rel": pl.String, "content_hash": pl.String})
        hashes = pl.concat([h.cast(schema) for h in self.hashes]) if self.hashes else pl.DataFrame(schema=schema)
        canon = pl.concat(self.canon) if self.canon else None
        if canon is None:
            return pl.DataFrame(schema=dict.fromkeys(verify.EXPECTED_COLUMNS, pl.String))
        return frame.expected_rows(canon, hashes.unique(subset="image_rel"))

    def outcomes(self) -> pl.DataFrame:
        """This attempt's files with their state: pending until the commit is confirmed, or rejected."""
        loaded = pl.concat(self.ok_files) if self.ok_files else pl.Series(dtype=pl.Int64)
        return self.todo.select(
            "rel", "size", "mtime_ns",
            pl.when(pl.col("file_id").is_in(loaded.implode())).then(pl.lit("pending"))
            .otherwise(pl.lit("rejected")).alias("state"))


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


@dataclass(frozen=True)
class _Committed:
    """What --verify-writes needs from a committed load."""

    dataset_id: int
    load_ts: datetime
    written: int
    expected: pl.DataFrame


def run(settings: Settings) -> Report:
    """Load settings.states_dir into settings.tag and return the report; errors propagate after the
    report, rejects and metrics files are written."""
    rep = Report(tag=settings.tag or "", backend=settings.backend, dry_run=settings.dry_run)
    progress = Progress(settings.progress == "on" or (settings.progress == "auto" and sys.stderr.isatty()))
    t0 = time.perf_counter()
    states_dir = settings.states_dir or (settings.single_file.parent if settings.single_file else None)
    assert states_dir is not None
    try:
        with rep.phase("plan"):
            plan = discover.plan(states_dir, settings.image_roots, settings.single_file)
        progress.note("plan: %d search files, %d other files below %s", plan.jsons.height, plan.other_files,
                      states_dir)
        checkpoint(settings, "planned")
        path = manifest_path(settings.manifest_dir, states_dir, settings.tag or "")
        man, why = Manifest.open(path, states_dir, settings.tag or "", settings.target_id)
        if why:
            log.warning("%s: %s; rebuilding it (every file is parsed again)", path, why)
        # Worker processes only pay off for more than one chunk of work; the manifest says how
        # much there probably is (the database may still void it, and then the work runs in-process).
        todo = plan.jsons.height if settings.full else plan.jsons.join(
            man.loaded_files(), on=["rel", "size", "mtime_ns"], how="anti").height
        with workers.pool(settings.workers if todo > settings.chunk_files else 1) as pool:  # starts now
            load_id = uuid.uuid4().hex
            store = image_store(settings)
            attempts = iter(range(1, settings.retries + 1))
            with database(settings) as dsn:
                done = db.retry(lambda: _attempt(settings, plan, man, store, rep, dsn, load_id, next(attempts),
                                                 why, progress, pool),
                                attempts=settings.retries, base_delay=settings.retry_delay)
                if done is not None and settings.verify_writes != "off":
                    with rep.phase("verify"):
                        rep.verify = _verify(settings, dsn, done, store)
                    progress.note("verify: %s (%d rows, %d screenshots checked)", rep.verify["result"],
                                  rep.verify["checked"], rep.verify["images_checked"])
        rep.status = "dry-run" if settings.dry_run else "ok"
        return rep
    except PharmloadError as exc:
        rep.status = "failed"
        rep.error = db.redact(str(exc), settings.secrets)
        raise
    finally:
        rep.elapsed = time.perf_counter() - t0
        _write_outputs(settings, rep)


def _verify(settings: Settings, dsn: str, done: _Committed, store: Store) -> dict[str, Any]:
    """Run --verify-writes; the load has committed, so a failure to verify is reported, not raised."""
    try:
        return verify.verify(dsn, settings.secrets, done.dataset_id, done.load_ts, done.written, done.expected,
                             store, deep=settings.verify_writes == "deep")
    except PharmloadError as exc:
        problem = f"could not verify: {db.redact(str(exc), settings.secrets)}"
        return {"result": "mismatch", "checked": 0, "images_checked": 0, "mismatch_count": 1,
                "mismatches": [{"problem": problem}]}


def _attempt(settings: Settings, plan: discover.Plan, man: Manifest, store: Store, rep: Report, dsn: str,
             load_id: str, attempt: int, manifest_problem: str | None, progress: Progress,
             pool: workers.Pool) -> _Committed | None:
    """One try at the whole database phase; a transient error anywhere in it means another try."""
    started = datetime.fromtimestamp(rep.started_at, UTC)
    rep.reset(attempt)
    if manifest_problem:
        rep.add_warnings([(str(man.path), "manifest_rebuilt", manifest_problem)])
    refused = list(plan.refused)
    conn = db.connect(dsn, settings.secrets)
    tx = LoadTransaction(conn, settings.secrets)
    try:
        with rep.phase("begin"):
            rep.dataset_id = tx.begin(settings.tag or "", settings.description, settings.created_by,
                                      settings.lock_wait, settings.statement_timeout_ms)
            if tx.committed(load_id):  # an earlier attempt committed, but its acknowledgement was lost
                man.promote(load_id)
                man.save()
                rep.note = "committed by an earlier attempt whose connection was lost"
                return None
            stale = man.reconcile(tx.committed)
            if stale:
                log.warning("%s: %s; every file is parsed again", man.path, stale)
                rep.add_warnings([(str(man.path), "manifest_stale", stale)])
        todo = plan.jsons if settings.full else plan.jsons.join(
            man.loaded_files(), on=["rel", "size", "mtime_ns"], how="anti")
        rep.files_found = plan.jsons.height + len(refused)
        rep.files_skipped = plan.jsons.height - todo.height
        rep.add_rejects(refused)
        man.pending, man.phase = load_id, "loading"
        if not settings.dry_run:
            man.save()
        lanes = workers.Lanes()
        load = _Load(settings, plan, todo, tx, rep, man, store, progress, lanes)
        progress.begin("parse", todo.height)
        try:
            for chunk in pool.ordered(parse.parse_and_prepare, load.parse_tasks(), window=2 * pool.size,
                                      timer=lambda: rep.phase("parse")):
                load.take_chunk(chunk)
                checkpoint(settings, "parsing")
                if settings.test_terminate_at == "copying":
                    lanes.drain()
                _terminate_for_test(settings, tx, dsn, attempt, "copying")
            if store.partial_failures:
                lanes.drain()
            else:
                lanes.wait_for(lanes.db)  # staging is complete; the store may still be writing
            progress.note("parse: %d files parsed (%d skipped as unchanged, %d rejected), %d rows staged",
                          todo.height, rep.files_skipped, rep.files_rejected, rep.rows_staged)
            load.repair_store()
            man.record_files(load.outcomes())
            man.phase = "staged"
            if not settings.dry_run:
                man.save()
            checkpoint(settings, "staged")
            _terminate_for_test(settings, tx, dsn, attempt, "merging")
            with rep.phase("merge"):
                load_ts = tx.transaction_time()
                counts = tx.merge()
            lanes.drain()  # every screenshot is in the store before anything commits
        finally:
            lanes.close()
        rep.rows_inserted, rep.rows_updated = counts.inserted, counts.updated
        rep.rows_unchanged, rep.images_new_rows = counts.unchanged, counts.images_new
        rep.images_referenced = counts.images_distinct
        progress.note("merge: %d rows inserted, %d updated, %d unchanged; %d screenshots newly stored",
                      counts.inserted, counts.updated, counts.unchanged, rep.images_stored)
        checkpoint(settings, "merged")
        if settings.dry_run:
            return None
        with rep.phase("commit"):
            rep.run_id = tx.record_run(settings.tag or "", started, rep.counts(), _summary(rep), load_id=load_id,
                                       manifest_digest=_digest(plan.jsons))
            tx.commit()
        progress.note("commit: load %s committed as run %s", load_id[:12], rep.run_id)
        checkpoint(settings, "committed")
        man.promote(load_id)
        man.save()
        checkpoint(settings, "done")
        assert rep.dataset_id is not None
        return _Committed(rep.dataset_id, load_ts, counts.inserted + counts.updated, load.expected())
    finally:
        tx.rollback()
        conn.close()


def _terminate_for_test(settings: Settings, tx: LoadTransaction, dsn: str, attempt: int, point: str) -> None:
    """Test-only: have the server drop this load's connection at a named point, on the first attempt."""
    if settings.test_terminate_at == point and attempt == 1:
        tx.terminate_backend(dsn)


def _digest(jsons: pl.DataFrame) -> str:
    """Names the state of the tree a load saw: every search file's path, size and mtime."""
    return hashlib.sha256(jsons.select("rel", "size", "mtime_ns").write_csv().encode()).hexdigest()


def _summary(rep: Report) -> dict[str, Any]:
    data = rep.as_dict()
    data.pop("warning_examples", None)
    data.pop("rejects", None)
    return data


def _write_outputs(settings: Settings, rep: Report) -> None:
    try:
        if settings.metrics_file is not None and not settings.dry_run:
            write_metrics(settings.metrics_file, rep, success=rep.status == "ok", end=time.time())
        if settings.rejects is not None:
            report.write_rejects(settings.rejects, rep.rejects)
        if settings.report_json is not None:
            report.write_json(settings.report_json, rep)
    except OSError as exc:
        raise LoadError(f"cannot write the report: {exc}") from exc
