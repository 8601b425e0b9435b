"""The only module that knows the order of the stages of a load.

plan -> manifest -> lock, schema, dataset -> parse, resolve, hash, clean (workers) -> COPY and store
(two lanes, per chunk: stream.py) -> one merge -> run record -> commit -> verify. Parsing, COPY and
storing overlap, and the merge deduplicates across chunks, so memory stays bounded by the chunk size
rather than by the size of the scrape. On a first load (nothing to reconcile), lock, schema and
dataset are done on the db lane too, beside the first chunk's parsing.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import polars as pl

from loader import heavy
from loader.db import process
from loader.db.target import database
from loader.errors import PharmloadError, is_interruption, redact, retry
from loader.metrics import write_outputs
from loader.progress import Progress
from loader.report import Report
from loader.run import digests, evidence, unchanged, workers
from loader.run.manifest import Manifest
from loader.run.stream import ChunkStream, checkpoint
from loader.scan import discover, parse, walk
from loader.settings import Settings
from loader.stores import image_store
from loader.stores.local import LocalStore

if TYPE_CHECKING:
    from loader.stores import Store

log = logging.getLogger("pharmload")


@dataclass(frozen=True)
class _Committed:
    """What --verify-writes needs from a committed load."""

    fresh: pl.DataFrame  # digests of the rows this load parsed (run/digests.py)


def run(settings: Settings, proc: process.DbProcess | None = None) -> Report:
    """Load settings.states_dir into settings.tag and return the report; errors propagate after the
    report, rejects and metrics files are written. With proc, the transaction runs in that process."""
    rep = Report(tag=settings.tag or "", backend=settings.backend, dry_run=settings.dry_run)
    progress = Progress(settings.progress == "on" or (settings.progress == "auto" and sys.stderr.isatty()))
    t0 = time.perf_counter()
    states_dir = settings.tree
    try:
        with rep.phase("plan"):
            plan = discover.plan(states_dir, settings.image_roots, settings.single_file)
        progress.note("plan: %d search files, %d other files below %s", plan.jsons.height, plan.other_files,
                      states_dir)
        checkpoint(settings, "planned")
        path = settings.manifest_file
        man, why = Manifest.open(path, states_dir, settings.tag or "", settings.target_id)
        if why:
            log.warning("%s: %s; rebuilding it (every file is parsed again)", path, why)
        # Worker processes only pay off for more than one chunk of work; the manifest says how
        # much there probably is (the database may still void it, and then the work runs in-process).
        todo = _todo(settings, plan.jsons, man)[0].height
        with contextlib.closing(man), workers.pool(settings.workers if todo > settings.chunk_files else 1) as pool:
            load_id = uuid.uuid4().hex
            store = image_store(settings)
            attempts = iter(range(1, settings.retries + 1))
            with database(settings, proc) as dsn:
                done = retry(lambda: _attempt(settings, plan, man, store, rep, dsn, load_id, next(attempts),
                                              why, progress, pool, proc),
                             attempts=settings.retries, base_delay=settings.retry_delay)
                if done is not None and settings.verify_writes != "off":
                    with rep.phase("verify"):
                        rep.verify = _verify(settings, dsn, done, store, plan, man, pool, progress)
                    progress.note("verify: %s (%d rows, %d screenshots checked)", rep.verify["result"],
                                  rep.verify["checked"], rep.verify["images_checked"])
        rep.status = "dry-run" if settings.dry_run else "ok"
        return rep
    except BaseException as exc:
        _record_failure(rep, exc, settings)
        raise
    finally:
        rep.elapsed = time.perf_counter() - t0
        write_outputs(settings, rep)


def _record_failure(rep: Report, exc: BaseException, settings: Settings) -> None:
    """What the report says of a load that raised. Ctrl-C and SIGTERM (and what they broke when
    sent to the whole group: a cancelled statement, the pool) make it interrupted; the CLI prints
    the note."""
    if is_interruption(exc):
        rep.status = "interrupted"
        rep.error = (f"the load had committed as run {rep.run_id} before that" if rep.run_id is not None
                     else "nothing was committed by the interrupted load")
        exc.add_note(rep.error)
    else:
        rep.status = "failed"
        rep.error = redact(str(exc) if isinstance(exc, PharmloadError) else f"{type(exc).__name__}: {exc}",
                           settings.secrets)


def _verify(settings: Settings, dsn: str, done: _Committed, store: Store, plan: discover.Plan, man: Manifest,
            pool: workers.Pool, progress: Progress) -> dict[str, Any]:
    """Run --verify-writes over every file the load covers (those skipped as unchanged too: their
    digests come from the manifest's sidecar); the load has committed, so a failure to verify is
    reported, not raised."""
    with heavy.kept_for_good():  # psycopg, which a load without --verify-writes may never import
        from loader.db import verify
    try:
        loaded = plan.jsons.join(man.loaded_files(), on=list(digests.FILE_KEY), how="semi")
        header = {"states_dir": man.states_dir, "tag": settings.tag or "", "target": settings.target_id,
                  "parse_key": settings.parse_key}
        expected = digests.covered(settings, plan, loaded, done.fresh, pool, progress,
                                   digests.sidecar_path(settings.manifest_file), header)
        threads = settings.max_concurrent_uploads if settings.backend == "supabase" else settings.workers
        return verify.check(dsn, settings.secrets, settings.tag or "", store, digests=expected.iter_slices(50_000),
                            fields=digests.fields_of(settings, plan), deep=settings.verify_writes == "deep",
                            threads=threads, timeout_ms=settings.statement_timeout_ms)
    except PharmloadError as exc:
        problem = f"could not verify: {redact(str(exc), settings.secrets)}"
        return {"result": "mismatch", "checked": 0, "images_checked": 0, "mismatch_count": 1,
                "mismatches": [{"problem": problem}]}


def _attempt(settings: Settings, plan: discover.Plan, man: Manifest, store: Store, rep: Report, dsn: str,
             load_id: str, attempt: int, manifest_problem: str | None, progress: Progress,
             pool: workers.Pool, proc: process.DbProcess | None) -> _Committed | None:
    """One try at the whole database phase; a transient error anywhere in it means another try."""
    started = datetime.fromtimestamp(rep.started_at, UTC)
    rep.reset(attempt)
    if manifest_problem:
        rep.add_warnings([(str(man.path), "manifest_rebuilt", manifest_problem)])
    refused = list(plan.refused)
    on_disk = man.committed  # the committed load the manifest file names, until this attempt saves it
    tx = process.transaction(proc, dsn, settings.secrets)
    lanes = workers.Lanes()
    try:
        if attempt == 1 and man.pending is None and man.committed is None:
            # Nothing to reconcile (a first load): which files to parse does not depend on the
            # database, so connecting and beginning run on the db lane while parsing starts; the
            # COPYs queue behind it. Saves their ~25 ms (fork of a backend, schema DDL) of a small load.
            lanes.open_with(_begin, settings, tx, rep)
            changed, stale = False, None
        else:
            _begin(settings, tx, rep)
            with rep.phase("begin"):
                if tx.committed(load_id):  # an earlier attempt committed, but its acknowledgement was lost
                    man.promote(load_id)
                    man.save()
                    rep.note = "committed by an earlier attempt whose connection was lost"
                    return None
                changed = man.pending is not None
                stale = man.reconcile(tx.committed)
            if stale:
                log.warning("%s: %s; every file is parsed again", man.path, stale)
                rep.add_warnings([(str(man.path), "manifest_stale", stale)])
        todo, remembered = _todo(settings, plan.jsons, man)
        with rep.phase("check"):
            moved = evidence.changed(man, plan.jsons)
        rep.add_warnings([c.warning() for c in moved])
        rep.files_found = plan.jsons.height + len(refused)
        rep.files_skipped = plan.jsons.height - todo.height - remembered.height
        rep.add_rejects(refused + list(zip(remembered["rel"], remembered["code"], remembered["detail"],
                                           strict=True)))
        # Nothing to parse and nothing reconciled: the manifest on disk stays right as it is (its
        # committed load is still in load_runs), so this run does not rewrite it.
        save = not settings.dry_run and (todo.height > 0 or changed or stale is not None)
        man.pending, man.phase, man.parse_key = load_id, "loading", settings.parse_key
        if save:
            man.save()
        load = ChunkStream(settings, plan, todo, tx, rep, man, store, progress, lanes)
        if settings.full:  # their files are parsed again, but what was loaded stands (evidence.py)
            load.keep_loaded = frozenset(c.image_rel for c in moved)
        progress.begin("parse", todo.height)
        for chunk in pool.ordered(parse.parse_and_prepare, load.parse_tasks(pool.size), window=2 * pool.size,
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
        distinct = load.settle()
        _terminate_for_test(settings, tx, dsn, attempt, "merging")
        # The merge runs in the db process and the server: meanwhile this process saves the manifest
        # file as staged and works out what the commit and the seal need, on a core otherwise idle.
        beside = ThreadPoolExecutor(1, thread_name_prefix="pharmload-beside")
        try:
            ahead = beside.submit(_stage_manifest, settings, plan, man, load, save)
            with rep.phase("merge"):
                counts = tx.merge(distinct)
            facts = workers.result_of(ahead)
        finally:
            beside.shutdown(wait=True)  # a failed merge's retry must not find this thread writing
        lanes.drain()  # every screenshot is in the store before anything commits
        rep.rows_inserted, rep.rows_updated = counts.inserted, counts.updated
        rep.rows_unchanged, rep.images_new_rows = counts.unchanged, counts.images_new
        rep.images_referenced = counts.images_distinct
        progress.note("merge: %d rows inserted, %d updated, %d unchanged; %d screenshots newly stored",
                      counts.inserted, counts.updated, counts.unchanged, rep.images_stored)
        checkpoint(settings, "merged")
        if settings.dry_run:
            return None
        if isinstance(store, LocalStore):
            with rep.phase("sync"):  # the screenshots are on disk before their rows commit
                store.sync()
        with rep.phase("commit"):
            rep.run_id = tx.record_run(settings.tag or "", started, rep.counts(), rep.summary(), load_id=load_id,
                                       manifest_digest=facts.digest)
            tx.commit()
        progress.note("commit: load %s committed as run %s", load_id[:12], rep.run_id)
        checkpoint(settings, "committed")
        man.promote(load_id)
        if save:
            man.save()
        _seal(settings, plan, man, load_id if save else on_disk, facts)
        checkpoint(settings, "done")
        return _Committed(digests.parsed(load.canon, load.hashes))
    except BaseException:
        if lanes.opening():
            tx.cancel()  # the db lane may be waiting for the tag's lock, for as long as another load runs
        raise
    finally:
        lanes.close()
        tx.close()


def _begin(settings: Settings, tx: process.Transaction, rep: Report) -> None:
    """Connect, take the tag's lock, make sure schema and dataset exist (on the db lane or in line)."""
    with rep.phase("begin"):
        rep.dataset_id = tx.begin(settings)


def _todo(settings: Settings, jsons: pl.DataFrame, man: Manifest) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(files to parse, files whose earlier reject stands): a file is parsed unless a confirmed load
    loaded or rejected it as it is now; --full parses everything."""
    if settings.full:
        return jsons, man.remembered_rejects(jsons.clear(), settings.parse_key)
    # Streamed: an in-memory anti-join of a million files held ~270 MB of hash tables at once. With
    # nothing loaded or remembered yet (a first load), todo is the plan itself, not a copy of it.
    loaded = man.loaded_files()
    todo = jsons if not loaded.height else jsons.lazy().join(
        loaded.lazy(), on=["rel", "size", "mtime_ns"], how="anti", maintain_order="left").collect(engine="streaming")
    remembered = man.remembered_rejects(todo, settings.parse_key)
    if not remembered.height:
        return todo, remembered
    return todo.join(remembered.select("rel"), on="rel", how="anti", maintain_order="left"), remembered


def _terminate_for_test(settings: Settings, tx: process.Transaction, dsn: str, attempt: int, point: str) -> None:
    """Test-only: have the server drop this load's connection at a named point, on the first attempt."""
    if settings.test_terminate_at == point and attempt == 1:
        tx.terminate_backend(dsn)


@dataclass(frozen=True)
class _Facts:
    """Of the tree as planned, for the commit and the seal (computed while the merge runs)."""

    digest: str                       # load_runs.manifest_digest
    fingerprint: str | None           # walk.fingerprint(), None when no seal can be written
    hashes: tuple[str, ...]           # every screenshot the manifest knows a hash of
    shots: tuple[tuple[str, int, int], ...]  # path, size, mtime_ns of each loaded file's screenshot


def _stage_manifest(settings: Settings, plan: discover.Plan, man: Manifest, load: ChunkStream, save: bool
                    ) -> _Facts:
    """Record this attempt's file outcomes (pending until the commit) and save the manifest file as
    staged; then the facts of the tree the commit and the seal need."""
    man.record_files(load.outcomes())
    man.phase = "staged"
    if save:
        man.save()
    checkpoint(settings, "staged")
    sealable = settings.single_file is None and plan.jsons.height < unchanged.LIMIT and not settings.dry_run
    fingerprint = (walk.fingerprint(plan.jsons.select("rel", "link", "size", "mtime_ns").iter_rows())
                   if sealable else None)
    hashes = (tuple(man.all_images().filter(pl.col("error").is_null())["content_hash"].unique().sort())
              if sealable else ())
    shots = (tuple(evidence.loaded_shots(man, plan.jsons, ("loaded", "pending"))
                   .select("path", "size", "mtime_ns").iter_rows()) if sealable else ())
    return _Facts(_digest(plan.jsons), fingerprint, hashes, shots)


def _digest(jsons: pl.DataFrame) -> str:
    """Names the state of the tree a load saw: every search file's path, size and mtime (as CSV,
    hashed a slice at a time: the whole text of a million files would be ~120 MB more at once)."""
    digest = hashlib.sha256()
    for i, part in enumerate(jsons.select("rel", "size", "mtime_ns").iter_slices(100_000)):
        digest.update(part.write_csv(include_header=i == 0).encode())
    return digest.hexdigest()


def _seal(settings: Settings, plan: discover.Plan, man: Manifest, committed: str | None, facts: _Facts) -> None:
    """Leave the seal a re-run of the unchanged tree is checked against (unchanged.py), when every
    search file's outcome stands in the manifest file as saved (none is retried by every run)."""
    if committed is None or facts.fingerprint is None:
        return
    identity = unchanged.manifest_identity(settings)
    if identity is None:
        return
    current = unchanged.read_seal(settings)
    if current is not None and current.fingerprint == facts.fingerprint:
        return
    remembered = man.remembered_rejects(plan.jsons, settings.parse_key)
    loaded = plan.jsons.join(man.loaded_files(), on=["rel", "size", "mtime_ns"], how="semi").height
    if loaded + remembered.height != plan.jsons.height:
        return
    try:
        unchanged.write_seal(settings, unchanged.Seal(
            manifest=identity, key=unchanged.settings_key(settings), load_id=committed,
            fingerprint=facts.fingerprint, manifest_digest=facts.digest,
            rejects=tuple(remembered.select("rel", "code", "detail").iter_rows()), hashes=facts.hashes,
            shots=facts.shots))
    except OSError as exc:  # the load has committed; without a seal, the next re-run takes the pipeline
        log.warning("%s: cannot write it (%s); the next re-run parses nothing but takes the full way",
                    unchanged.seal_path(settings), exc.strerror or exc)
