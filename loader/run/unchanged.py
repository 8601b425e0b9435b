"""A re-run of an unchanged tree, done before polars is imported.

Importing polars is ~0.15 s, a quarter of such a re-run, and the full pipeline needs it for its
plan, its manifest and its joins. So a committed load leaves a seal beside its manifest: the state
of the tree it saw (a fingerprint of every search file's path, link, size and mtime), which
manifest file the seal vouches for, the rejects that stand, and the screenshots the store must
hold. A later run whose walk gives the same fingerprint, whose store still has every screenshot,
whose loaded files' screenshots keep the size and mtime they were loaded with, and whose database
still holds the sealed load, records its run and is done: what the pipeline would have done with
nothing to parse, and the same report. Anything else (no seal or another manifest, a changed file,
a lost or changed screenshot, a reset database, --full, --dry-run,
--verify-writes, Supabase) takes the full pipeline, which re-checks and repairs everything.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson

from loader.db import process
from loader.db.target import database
from loader.errors import PharmloadError, redact, retry
from loader.metrics import write_outputs
from loader.progress import Progress
from loader.report import Report, write_atomically
from loader.scan.walk import BATCH, Found, fingerprint, walk
from loader.settings import Settings
from loader.stores import image_store

VERSION = 2  # 2: the seal lists the screenshots of the loaded files (shots)
LIMIT = BATCH  # search files: a larger tree gets no seal (its re-run is mostly walking anyway)


@dataclass(frozen=True)
class Seal:
    """What a committed load vouches for; written atomically after its manifest."""

    manifest: tuple[int, int, int]  # size, mtime_ns and inode of the manifest file it vouches for
    key: str                        # settings_key() of the load
    load_id: str                    # the load the manifest file records as committed
    fingerprint: str                # walk.fingerprint() of the tree
    manifest_digest: str            # load_runs.manifest_digest of that state of the tree
    rejects: tuple[tuple[str, str, str], ...]  # rejects that stand: rel, code, detail, in path order
    hashes: tuple[str, ...]         # screenshots the store must hold
    shots: tuple[tuple[str, int, int], ...] = ()  # path, size, mtime_ns of the loaded files' screenshots


class _TooMany(Exception):
    """The walk passed LIMIT search files: no seal can match."""


def seal_path(settings: Settings) -> Path:
    return settings.manifest_file.with_suffix(".seal.json")


def settings_key(settings: Settings) -> str:
    """What else a sealed outcome depends on: the tree, tag, target, parse settings, image roots."""
    parts = [str(settings.tree.resolve()), settings.tag or "", settings.target_id, settings.parse_key,
             str(settings.max_image_bytes), *(str(r) for r in settings.image_roots)]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def manifest_identity(settings: Settings) -> tuple[int, int, int] | None:
    try:
        st = os.stat(settings.manifest_file)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns, st.st_ino


def write_seal(settings: Settings, seal: Seal) -> None:
    # vars(), not asdict(): asdict copies every one of the hashes first (30 ms for 18,000); orjson
    # writes the tuples as they are.
    write_atomically(seal_path(settings), orjson.dumps({"version": VERSION, **vars(seal)}))


def read_seal(settings: Settings) -> Seal | None:
    """The seal of this tree and tag, if it still vouches for the manifest file as it is now."""
    try:
        data = orjson.loads(seal_path(settings).read_bytes())
        if data.pop("version") != VERSION:
            return None
        seal = Seal(manifest=tuple(data["manifest"]), key=data["key"], load_id=data["load_id"],
                    fingerprint=data["fingerprint"], manifest_digest=data["manifest_digest"],
                    rejects=tuple(tuple(r) for r in data["rejects"]), hashes=tuple(data["hashes"]),
                    shots=tuple(tuple(s) for s in data["shots"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if seal.manifest != manifest_identity(settings) or seal.key != settings_key(settings):
        return None
    return seal


def _eligible(settings: Settings) -> bool:
    return (settings.backend in ("postgresql", "embedded") and not settings.full and not settings.dry_run
            and settings.verify_writes == "off" and settings.single_file is None
            and settings.test_kill_at is None and settings.test_terminate_at is None)


def _scan(settings: Settings) -> tuple[str, int, list[tuple[str, str, str]]] | None:
    """(fingerprint, search files, refused) of the tree as the plan would walk it; None past LIMIT."""
    def too_many(_: Found) -> None:
        raise _TooMany

    root = settings.tree.resolve()
    roots = (str(root), *(str(r.resolve()) for r in settings.image_roots))
    try:
        found, refused = walk(root, roots, flush=too_many)
    except _TooMany:
        return None
    files = sorted(zip(found.rel, found.link, found.size, found.mtime_ns, strict=True))
    return fingerprint(files), len(files), sorted(refused)


def _shots_as_sealed(shots: tuple[tuple[str, int, int], ...]) -> bool:
    """Whether every loaded file's screenshot still has the size and mtime it was loaded with (one
    stat each). One removed from the scrape since does not count: the store holds its own copy (the
    store check above), and the pipeline would have nothing to report about it either."""
    for path, size, mtime_ns in shots:
        try:
            st = os.stat(path)
        except OSError:
            continue
        if st.st_size != size or st.st_mtime_ns != mtime_ns:
            return False
    return True


def rerun(settings: Settings, proc: process.DbProcess | None = None) -> Report | None:
    """Record a re-run of an unchanged tree and return its report; None when the full pipeline must
    run instead (nothing has been written then). With proc, the transaction runs in that process."""
    if not _eligible(settings) or (seal := read_seal(settings)) is None:
        return None
    rep = Report(tag=settings.tag or "", backend=settings.backend, dry_run=False)
    t0 = time.perf_counter()
    with rep.phase("plan"):
        scan = _scan(settings)
    if scan is None or scan[0] != seal.fingerprint:
        return None
    with rep.phase("store"):
        if image_store(settings).missing(list(seal.hashes)):
            return None  # the pipeline puts lost screenshots back
    with rep.phase("check"):
        if not _shots_as_sealed(seal.shots):
            return None  # a screenshot changed behind its search file: the pipeline reports it
    _, files, refused = scan
    progress = Progress(settings.progress == "on" or (settings.progress == "auto" and sys.stderr.isatty()))
    progress.note("plan: %d search files, unchanged since load %s: nothing to parse", files, seal.load_id[:12])
    try:
        with database(settings, proc) as dsn:
            attempts = iter(range(1, settings.retries + 1))
            recorded = retry(lambda: _record(settings, seal, rep, dsn, files, refused, next(attempts), proc),
                             attempts=settings.retries, base_delay=settings.retry_delay)
        if not recorded:
            return None  # the database does not hold the sealed load: the pipeline reconciles
        rep.status = "ok"
        progress.note("commit: unchanged tree recorded as run %s", rep.run_id)
        return rep
    except PharmloadError as exc:
        rep.status = "failed"
        rep.error = redact(str(exc), settings.secrets)
        raise
    finally:
        if rep.status != "running":
            rep.elapsed = time.perf_counter() - t0
            write_outputs(settings, rep)


def _record(settings: Settings, seal: Seal, rep: Report, dsn: str, files: int,
            refused: list[tuple[str, str, str]], attempt: int, proc: process.DbProcess | None) -> bool:
    """One try: take the tag's lock, check the sealed load committed, record this run, commit."""
    rep.reset(attempt)
    rep.note = f"tree unchanged since load {seal.load_id[:12]}: nothing was parsed"
    rep.files_found = files + len(refused)
    rep.files_skipped = files - len(seal.rejects)
    rep.add_rejects(refused + list(seal.rejects))
    tx = process.transaction(proc, dsn, settings.secrets)
    try:
        with rep.phase("begin"):
            rep.dataset_id = tx.begin(settings)
            if not tx.committed(seal.load_id):
                return False
        with rep.phase("commit"):
            started = datetime.fromtimestamp(rep.started_at, UTC)
            rep.run_id = tx.record_run(settings.tag or "", started, rep.counts(), rep.summary(),
                                       load_id=uuid.uuid4().hex, manifest_digest=seal.manifest_digest)
            tx.commit()
        return True
    finally:
        tx.close()
