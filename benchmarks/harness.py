"""Benchmark harness: pharmload against the old importer's way, dlt, and the hardware floor.

    python -m benchmarks.harness --sizes 515:100000,20000:20000 --runs 3 --skip-slow

One PostgreSQL server (the embedded one, `loader.db.embedded.start`) is started in
``--work-dir``/pgdata (default ``/var/tmp/pharmload-bench-<uid>``) and kept for the whole run; every
timed run gets a database of its own (``CREATE DATABASE``), dropped once its end state is checked.
Each contender is timed as a whole process, interpreter start to exit, by a tiny launcher process
(``LAUNCHER``) that forks and execs it: wall clock from fork to ``os.wait4``; CPU seconds from the
launcher's ``getrusage(RUSAGE_CHILDREN)`` (the launcher is a child subreaper, so processes the
contender leaves behind, such as multiprocessing's forkserver and its workers, are reaped there and
their CPU counts too); peak RSS is ``ru_maxrss`` from ``wait4`` (the largest single process of the
contender's tree). A thread in the harness samples every 50 ms (psutil) the summed RSS of the
contender's process tree and of every process of the server (the postmaster and its children),
and keeps the peaks; the server's CPU seconds are read before and after.

Contenders (``--contenders``): ``pharmload`` (``python -m loader load --backend postgresql``; scenarios
``first`` = empty tag, ``rerun`` = the same tree again with its manifest, ``incremental`` = one more
day added with ``benchmarks.corpus.add_day``, each on a fresh hard-linked copy of the corpus),
``baseline`` (benchmarks/baseline.py, the old importer's way), ``dlt`` (benchmarks/dlt_runner.py) and
``floor`` (benchmarks/floor.py: ``read`` = read every byte and SHA-256 every screenshot, ``copy`` =
``psql \\copy`` of the final rows + pharmload's merge). Before a run's time counts, its end state is
checked: the ``search_results`` key set and row count must equal the corpus generator's expectation
and pharmload's (and, for the contenders that write the same table, a digest of every column and of
``image_assets``); a mismatch stops the benchmark with exit code 1.

Corpora are generated once into ``--corpus-dir`` (default ``/var/tmp/pharmload-bench-corpus``) as
``<files>-<image bytes>-<seed>`` and reused. Results: a Markdown table and a JSON file (and a PNG
plot) in ``--results-dir`` (default ``benchmarks/results``), named by date and sizes.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import fcntl
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]  # no stubs in the venv
import psycopg
from psycopg import sql

from benchmarks import floor
from benchmarks.corpus import CORPUS_VERSION, PROFILES, CorpusSpec, add_day, generate

REPO = Path(__file__).resolve().parent.parent
CONTENDERS = ("pharmload", "baseline", "dlt", "floor")
SCENARIOS = {"pharmload": ("first", "rerun", "incremental"), "baseline": ("first",), "dlt": ("first",),
             "floor": ("read", "copy")}
TAG = "bench-scrape"
DLT_DATASET = "pharmload_dlt"
MB = 1024 * 1024
SAMPLE_INTERVAL = 0.05
PSS_EVERY = 5
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_MEMORY = 0, 1, 2, 3

Key = tuple[str, str, str | None]


class BenchmarkError(Exception):
    """A contender failed, or its end state is not pharmload's: the benchmark is void."""


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Corpora
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    """What a correct load of a tree ends with, from the generator's own bookkeeping."""

    keys: frozenset[Key]
    images: frozenset[str]  # referenced screenshots (rel paths): one image_assets row each
    json_files: int
    png_files: int

    @property
    def files(self) -> int:
        return self.json_files + self.png_files

    def union(self, other: Expected) -> Expected:
        return Expected(self.keys | other.keys, self.images | other.images, self.json_files + other.json_files,
                        self.png_files + other.png_files)


@dataclass
class Corpus:
    files: int
    image_bytes: int
    seed: int
    profile: str
    root: Path  # the tree (a states folder)
    expected: Expected
    day_dir: Path | None = None  # holds the one extra day folder, for the incremental scenario
    day_expected: Expected | None = None  # expectation for the tree plus that day

    @property
    def name(self) -> str:
        return corpus_name(self.files, self.image_bytes, self.seed, self.profile)

    @property
    def spec(self) -> CorpusSpec:
        return CorpusSpec(files=self.files, seed=self.seed, image_bytes=self.image_bytes, profile=self.profile)


def corpus_name(files: int, image_bytes: int, seed: int, profile: str) -> str:
    """The cache's name for a corpus; the generator's version in it keeps a stale cache from being reused."""
    return f"{profile}-v{CORPUS_VERSION}-{files}-{image_bytes}-{seed}"


def _write_expected(path: Path, stats: Any) -> Expected:
    exp = Expected(frozenset(stats.row_keys), frozenset(stats.image_files), stats.json_files, stats.png_files)
    data = {"summary": stats.summary(), "json_files": exp.json_files, "png_files": exp.png_files,
            "keys": sorted(([s, n, lic] for s, n, lic in exp.keys), key=lambda k: (k[0], k[1], k[2] or "")),
            "images": sorted(exp.images)}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    tmp.replace(path)
    return exp


def _read_expected(path: Path) -> Expected | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Expected(frozenset((s, n, lic) for s, n, lic in data["keys"]), frozenset(data["images"]),
                        int(data["json_files"]), int(data["png_files"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def ensure_corpus(corpus_dir: Path, files: int, image_bytes: int, seed: int, profile: str) -> Corpus:
    """The cached corpus, generated first if missing (into a temporary folder, then renamed)."""
    name = corpus_name(files, image_bytes, seed, profile)
    root, exp_path = corpus_dir / name, corpus_dir / f"{name}.expected.json"
    corpus_dir.mkdir(parents=True, exist_ok=True)
    with open(corpus_dir / f".{name}.lock", "w") as lock:  # another benchmark may be writing it
        fcntl.flock(lock, fcntl.LOCK_EX)
        expected = _read_expected(exp_path) if root.is_dir() else None
        if expected is None:
            expected = _generate_corpus(corpus_dir, name, CorpusSpec(files=files, seed=seed, image_bytes=image_bytes,
                                                                     profile=profile))
    return Corpus(files, image_bytes, seed, profile, root, expected)


def _generate_corpus(corpus_dir: Path, name: str, spec: CorpusSpec) -> Expected:
    root, exp_path = corpus_dir / name, corpus_dir / f"{name}.expected.json"
    shutil.rmtree(root, ignore_errors=True)
    tmp = corpus_dir / f".{name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    log(f"generating corpus {name} into {corpus_dir} (once; reused by later runs)")
    started = time.perf_counter()
    stats = generate(tmp, spec)
    tmp.rename(root)
    expected = _write_expected(exp_path, stats)
    log(f"corpus {name}: {stats.json_files} JSON + {stats.png_files} PNG in {time.perf_counter() - started:.1f}s")
    return expected


def ensure_day(corpus: Corpus, corpus_dir: Path) -> None:
    """The extra day folder add_day writes after the corpus's last day, cached next to it."""
    if corpus.day_dir is not None:
        return
    day_dir, exp_path = corpus_dir / f"{corpus.name}.day", corpus_dir / f"{corpus.name}.day.expected.json"
    with open(corpus_dir / f".{corpus.name}.lock", "w") as lock:  # another benchmark may be writing it
        fcntl.flock(lock, fcntl.LOCK_EX)
        day_exp = _read_expected(exp_path) if day_dir.is_dir() else None
        if day_exp is None:
            day_exp = _generate_day(corpus, corpus_dir)
    corpus.day_dir = day_dir
    corpus.day_expected = corpus.expected.union(day_exp)


def _generate_day(corpus: Corpus, corpus_dir: Path) -> Expected:
    day_dir, exp_path = corpus_dir / f"{corpus.name}.day", corpus_dir / f"{corpus.name}.day.expected.json"
    shutil.rmtree(day_dir, ignore_errors=True)
    tmp = corpus_dir / f".{corpus.name}.daytmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    hardlink_tree(corpus.root, tmp)
    log(f"adding one day to corpus {corpus.name} (once)")
    stats = add_day(tmp, corpus.spec, corpus.spec.days)
    if len(stats.days) != 1:
        raise BenchmarkError(f"add_day wrote {stats.days}, expected one day folder")
    staging = corpus_dir / f".{corpus.name}.day-{os.getpid()}"
    staging.mkdir()
    (tmp / stats.days[0]).rename(staging / stats.days[0])
    shutil.rmtree(tmp)
    staging.rename(day_dir)
    return _write_expected(exp_path, stats)


def hardlink_tree(src: Path, dst: Path) -> None:
    """A copy of src at dst whose files are hard links (same bytes, same mtimes, no data copied)."""
    shutil.rmtree(dst, ignore_errors=True)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if subprocess.run(["cp", "-al", str(src), str(dst)], stderr=subprocess.DEVNULL).returncode != 0:
        shutil.rmtree(dst, ignore_errors=True)  # another file system: a real copy, mtimes kept
        subprocess.run(["cp", "-a", str(src), str(dst)], check=True)


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------


class Server:
    """The embedded PostgreSQL, kept for the whole benchmark; one database per timed run."""

    def __init__(self, data_dir: Path) -> None:
        from loader.db import embedded
        self.data_dir = data_dir
        self.embedded = embedded.start(data_dir)
        self.admin = psycopg.connect(self.dsn("postgres"), autocommit=True)
        for (name,) in self.admin.execute("SELECT datname FROM pg_database WHERE datname LIKE 'bench\\_%'").fetchall():
            self.drop(name)  # left by an interrupted benchmark
        self.postmaster_pid = int((data_dir / "postmaster.pid").read_text().split()[0])
        self.version = str(self.admin.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
        self.settings = {name: str(self.admin.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()[0])  # type: ignore[index]
                         for name in ("shared_buffers", "fsync", "synchronous_commit", "max_wal_size", "work_mem")}

    def dsn(self, database: str) -> str:
        return self.embedded.dsn(database)

    def create(self, database: str) -> str:
        self.drop(database)
        self.admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        return self.dsn(database)

    def drop(self, database: str) -> None:
        self.admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))

    def processes(self) -> list[psutil.Process]:
        root = psutil.Process(self.postmaster_pid)
        return [root, *root.children(recursive=True)]

    def cpu_seconds(self) -> float:
        """CPU of the whole server so far: live processes, plus the backends that exited (reaped by
        the postmaster, so in its children's times)."""
        root = psutil.Process(self.postmaster_pid)
        t = root.cpu_times()
        total = t.user + t.system + t.children_user + t.children_system
        for child in root.children():
            with contextlib.suppress(psutil.Error):
                c = child.cpu_times()
                total += c.user + c.system
        return float(total)

    def settle(self, baseline: int, timeout: float = 3.0) -> None:
        """Wait until the backends a contender opened have exited (so their CPU is accounted)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(psutil.Error):
                if len(psutil.Process(self.postmaster_pid).children()) <= baseline:
                    return
            time.sleep(0.01)

    def backends(self) -> int:
        return len(psutil.Process(self.postmaster_pid).children())

    def close(self) -> None:
        with contextlib.suppress(psycopg.Error):
            self.admin.close()
        self.embedded.release(stop=True)


# --------------------------------------------------------------------------------------------
# Measuring one process
# --------------------------------------------------------------------------------------------


@dataclass
class Run:
    wall: float
    cpu: float
    rss_mb: float  # ru_maxrss of the contender (its largest single process)
    tree_rss_mb: float  # peak of the summed RSS of its process tree, sampled
    server_rss_mb: float  # peak of the summed RSS of every server process, sampled
    server_cpu: float  # CPU seconds the server spent meanwhile (all its processes)
    exit_code: int
    extra: dict[str, Any] = field(default_factory=dict)


def _tree_rss(procs: Sequence[psutil.Process]) -> int:
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def _tree_pss(procs: Sequence[psutil.Process]) -> int:
    """Proportional set size: shared pages (forked workers, shared buffers) split among their users."""
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += p.memory_full_info().pss
    return total


class PeakSampler(threading.Thread):
    """Every SAMPLE_INTERVAL: summed RSS of the server's processes and of the contender's tree; every
    PSS_EVERY-th time also the contender tree's summed PSS (reading smaps costs ~1 ms a process)."""

    def __init__(self, server: Server) -> None:
        super().__init__(name="bench-rss-sampler", daemon=True)
        self.server = server
        self.target: psutil.Process | None = None
        self.server_peak = 0
        self.tree_peak = 0
        self.tree_pss_peak = 0
        self.samples = 0
        self.halt = threading.Event()

    def sample(self) -> None:
        with contextlib.suppress(psutil.Error):
            self.server_peak = max(self.server_peak, _tree_rss(self.server.processes()))
        launcher = self.target
        if launcher is not None:  # the contender's tree: everything below the launcher
            with contextlib.suppress(psutil.Error):
                tree = launcher.children(recursive=True)
                self.tree_peak = max(self.tree_peak, _tree_rss(tree))
                if self.samples % PSS_EVERY == 0:
                    self.tree_pss_peak = max(self.tree_pss_peak, _tree_pss(tree))
        self.samples += 1

    def run(self) -> None:
        self.sample()
        while not self.halt.wait(SAMPLE_INTERVAL):
            self.sample()

    def stop(self) -> None:
        self.halt.set()
        self.join()


# A tiny launcher between the harness and each contender. The contender is forked from it rather
# than from the harness because Linux folds the RSS high-water mark of the image a process had
# before exec (for fork or vfork: its parent's) into its ru_maxrss; forked from a big harness,
# every contender would report at least the harness's size. The launcher (python -S, a few MB) is
# a child subreaper, so orphans of the contender (multiprocessing's forkserver and its workers)
# are re-parented to it and reaped, and their CPU shows in its RUSAGE_CHILDREN.
LAUNCHER = r"""
import ctypes, json, os, resource, sys, time
result, cmd = sys.argv[1], sys.argv[2:]
try:
    subreaper = ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0
except Exception:
    subreaper = False
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(cmd[0], cmd)
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - started
deadline, left = time.monotonic() + 60, False
while True:
    try:
        if os.waitpid(-1, os.WNOHANG)[0] == 0:
            if time.monotonic() > deadline:
                left = True
                break
            time.sleep(0.005)
    except ChildProcessError:
        break
total = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(result, "w") as f:
    json.dump({"wall": wall, "exit_code": os.waitstatus_to_exitcode(status), "maxrss_kb": usage.ru_maxrss,
               "main_cpu": usage.ru_utime + usage.ru_stime, "cpu": total.ru_utime + total.ru_stime,
               "subreaper": subreaper, "orphans_left": left}, f)
"""


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def measure(cmd: list[str], *, env: dict[str, str], out: Path, server: Server, timeout: float,
            python: str = sys.executable, cwd: Path = REPO) -> Run:
    """Run cmd as a whole process (through the launcher, in a session of its own) and measure it."""
    server_procs, server_before = server.backends(), server.cpu_seconds()
    sampler = PeakSampler(server)
    sampler.start()
    result = out.with_suffix(".rusage.json")
    result.unlink(missing_ok=True)
    with open(out.with_suffix(".out"), "wb") as fo, open(out.with_suffix(".err"), "wb") as fe:
        proc = subprocess.Popen([python, "-S", "-c", LAUNCHER, str(result), *cmd], stdout=fo, stderr=fe, env=env,
                                cwd=cwd, start_new_session=True)
        try:
            with contextlib.suppress(psutil.Error):
                sampler.target = psutil.Process(proc.pid)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _kill_group(proc.pid)
                proc.wait()
                raise BenchmarkError(f"{cmd[:4]}... did not finish in {timeout:.0f}s; killed") from None
        except BaseException:
            _kill_group(proc.pid)
            raise
        finally:
            sampler.stop()
    try:
        usage = json.loads(result.read_text())
    except (OSError, ValueError):
        raise BenchmarkError(f"the launcher of {cmd[:4]}... exited with {proc.returncode} and no result") from None
    server.settle(server_procs)
    run = Run(wall=float(usage["wall"]), cpu=float(usage["cpu"]), rss_mb=usage["maxrss_kb"] / 1024,
              tree_rss_mb=sampler.tree_peak / MB, server_rss_mb=sampler.server_peak / MB,
              server_cpu=server.cpu_seconds() - server_before, exit_code=int(usage["exit_code"]))
    run.extra.update(rss_samples=sampler.samples, tree_pss_mb=sampler.tree_pss_peak / MB, main_cpu=usage["main_cpu"],
                     subreaper=usage["subreaper"], orphans_left=usage["orphans_left"])
    return run


def check_exit(run: Run, ok: Sequence[int], what: str, out: Path) -> None:
    if run.exit_code not in ok:
        tail = out.with_suffix(".err").read_text(errors="replace")[-2000:]
        raise BenchmarkError(f"{what} exited with {run.exit_code} after {run.wall:.1f}s:\n{tail}")


# --------------------------------------------------------------------------------------------
# End states
# --------------------------------------------------------------------------------------------

ROW_DIGEST = """
SELECT md5(string_agg(md5(row({cols})::text), '' ORDER BY search_state, search_name, license_number NULLS FIRST))
FROM {table} WHERE {where}
"""
ALL_COLUMNS = ("search_state", "search_name", "license_number", "search_ts", "license_status", "license_name",
               "license_type", "address", "city", "state", "zip", "issue_date", "expiration_date", "result_status",
               "meta", "raw", "image_hash")
IMAGE_DIGEST = ("SELECT count(*), md5(string_agg(md5(row(content_hash, storage_path, storage_type, file_size, "
                "content_type, width, height)::text), '' ORDER BY content_hash)) FROM image_assets")


@dataclass
class EndState:
    rows: int
    keys: frozenset[Key]
    digest: str | None = None  # every column but id, dataset_id and the two timestamps of the row itself
    digest_no_image: str | None = None  # the same without image_hash (the floor stages no images)
    images: int | None = None
    image_digest: str | None = None


def _digest(conn: psycopg.Connection[Any], table: sql.Composable, where: sql.Composable,
            columns: Sequence[str], params: Sequence[Any]) -> str | None:
    query = sql.SQL(ROW_DIGEST).format(cols=sql.SQL(", ").join(map(sql.Identifier, columns)), table=table,
                                       where=where)
    row = conn.execute(query, params).fetchone()
    return None if row is None else row[0]


def search_results_state(dsn: str, images: bool = True) -> EndState:
    """pharmload's tables (also written by the baseline and the floor's merge)."""
    with psycopg.connect(dsn) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        found = conn.execute("SELECT id FROM datasets WHERE kind = 'states' AND tag = %s", (TAG,)).fetchone()
        if found is None:
            raise BenchmarkError(f"no dataset {TAG!r} in {dsn}")
        where, params = sql.SQL("dataset_id = %s"), (found[0],)
        keys = conn.execute("SELECT search_state, search_name, license_number FROM search_results "
                            "WHERE dataset_id = %s", params).fetchall()
        table = sql.Identifier("search_results")
        state = EndState(rows=len(keys), keys=frozenset((s, n, lic) for s, n, lic in keys),
                         digest=_digest(conn, table, where, ALL_COLUMNS, params),
                         digest_no_image=_digest(conn, table, where, ALL_COLUMNS[:-1], params))
        if images:
            count, digest = conn.execute(IMAGE_DIGEST).fetchone() or (0, None)
            state.images, state.image_digest = int(count), digest
    return state


def dlt_state(dsn: str) -> EndState:
    """dlt's own table: the key set (its "" license number stands for NULL) and the row count."""
    with psycopg.connect(dsn) as conn:
        query = sql.SQL("SELECT search_state, search_name, license_number FROM {} WHERE dataset_tag = %s").format(
            sql.Identifier(DLT_DATASET, "search_results"))
        keys = conn.execute(query, (TAG,)).fetchall()
    return EndState(rows=len(keys), keys=frozenset((s, n, lic if lic != "" else None) for s, n, lic in keys))


def _show(keys: Iterator[Key] | frozenset[Key], limit: int = 5) -> str:
    return ", ".join(repr(k) for k in sorted(keys, key=lambda k: (k[0], k[1], k[2] or ""))[:limit])


def compare(what: str, got: EndState, expected: Expected, reference: EndState | None, *,
            digest: str | None = None, images: bool = False) -> None:
    """Raise BenchmarkError unless got is the expected end state (and the reference's, when given)."""
    problems = []
    if got.rows != len(got.keys):
        problems.append(f"{got.rows} rows but {len(got.keys)} distinct keys (duplicates)")
    for name, keys in (("the corpus's expectation", expected.keys),
                       ("pharmload's end state", reference.keys if reference else None)):
        if keys is None:
            continue
        if got.keys != keys or got.rows != len(keys):
            problems.append(f"key set differs from {name}: {got.rows} rows vs {len(keys)}; missing "
                            f"[{_show(keys - got.keys)}], extra [{_show(got.keys - keys)}]")
    if reference is not None and digest is not None:
        mine, theirs = getattr(got, digest), getattr(reference, digest)
        if mine != theirs:
            problems.append(f"row contents differ from pharmload's ({digest} {mine} != {theirs})")
    if images:
        if got.images != len(expected.images):
            problems.append(f"{got.images} image_assets rows, expected {len(expected.images)}")
        if reference is not None and got.image_digest != reference.image_digest:
            problems.append("image_assets rows differ from pharmload's")
    if problems:
        raise BenchmarkError(f"{what}: end state is wrong:\n  " + "\n  ".join(problems))


# --------------------------------------------------------------------------------------------
# The runs
# --------------------------------------------------------------------------------------------


@dataclass
class Series:
    """Every timed run of one contender and scenario at one corpus size."""

    contender: str
    scenario: str
    files: int  # search files in the tree the runs loaded
    runs: list[Run] = field(default_factory=list)
    warmup: list[Run] = field(default_factory=list)


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work: Path = args.work_dir
        self.scratch: Path = self.work / "runs"
        self.server: Server | None = None
        self.python = str(args.python)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("PHARMLOAD_", "PG", "DLT_",
                                                                                "DESTINATION__"))}
        self.env.update({"LC_ALL": "C.UTF-8", "PYTHONUNBUFFERED": "1", "RUNTIME__DLTHUB_TELEMETRY": "false"})
        self.env.pop("LANG", None)
        # Every contender runs with its bytecode cached, as an installed package (pip compiles it) or
        # any second run has it. Under PYTHONDONTWRITEBYTECODE=1 (set on some machines) pharmload's
        # and the runners' modules would otherwise be compiled again by every run: ~0.05-0.1 s.
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        for package in ("loader", "sql", "benchmarks"):
            compileall.compile_dir(REPO / package, quiet=1)
        self.series: dict[tuple[int, int], dict[tuple[str, str], Series]] = {}
        self.references: dict[tuple[int, int, str], EndState] = {}
        self.stage_cache: dict[tuple[int, int], Path] = {}
        self.counter = 0
        self.dirs = 0

    # -- plumbing ---------------------------------------------------------------------------------

    @property
    def srv(self) -> Server:
        assert self.server is not None
        return self.server

    def dir(self, *parts: str) -> Path:
        """A new scratch folder, kept until the benchmark ends.

        Nothing is deleted between timed runs: right after a mass delete, ext4 (without a journal,
        as here) skips recently freed inodes one by one when it allocates new ones, which made the
        next run's mkdirs several times slower and charged one run for its predecessor's clean-up.
        """
        self.dirs += 1
        path = self.scratch.joinpath(*parts[:-1], f"{parts[-1]}-{self.dirs:03d}")
        path.mkdir(parents=True)
        return path

    def database(self, contender: str) -> tuple[str, str]:
        self.counter += 1
        name = f"bench_{contender}_{self.counter}"
        return name, self.srv.create(name)

    def record(self, corpus: Corpus, contender: str, scenario: str, files: int, run: Run, warm: bool) -> None:
        per_size = self.series.setdefault((corpus.files, corpus.image_bytes), {})
        s = per_size.setdefault((contender, scenario), Series(contender, scenario, files))
        (s.warmup if warm else s.runs).append(run)
        label = "warm-up" if warm else f"run {len(s.runs)}/{self.args.runs}"
        log(f"{corpus.name} {contender}/{scenario} {label}: {run.wall:.2f}s wall, {run.cpu:.2f}s CPU, "
            f"RSS {run.rss_mb:.0f} MB (tree {run.tree_rss_mb:.0f}), server {run.server_rss_mb:.0f} MB")

    # -- contenders ---------------------------------------------------------------------------------

    def pharmload_cmd(self, dsn: str, tree: Path, images: Path, manifests: Path, report: Path) -> list[str]:
        return [self.python, "-m", "loader", "load", "--backend", "postgresql", "--dsn", dsn, "--states-dir",
                str(tree), "--tag", TAG, "--image-dir", str(images), "--manifest-dir", str(manifests),
                "--report-json", str(report)]

    def run_pharmload(self, corpus: Corpus, i: int, warm: bool, scenarios: Sequence[str]) -> None:
        """first, rerun and incremental, in that order, on one hard-linked copy of the corpus."""
        base = self.dir("pharmload")
        tree, images, manifests = base / "tree", base / "images", base / "manifests"
        wanted = [s for s in SCENARIOS["pharmload"] if s in scenarios]
        if not wanted:
            return
        hardlink_tree(corpus.root, tree)
        name, dsn = self.database("pharmload")
        for scenario in SCENARIOS["pharmload"]:
            if scenario != "first" and scenario not in wanted:
                continue  # the first load is always run: it is what the others start from
            if scenario == "incremental":
                ensure_day(corpus, self.args.corpus_dir)
                assert corpus.day_dir is not None and corpus.day_expected is not None
                for day in corpus.day_dir.iterdir():
                    hardlink_tree(day, tree / day.name)
            expected = corpus.day_expected if scenario == "incremental" else corpus.expected
            assert expected is not None
            report = base / f"{scenario}.report.json"
            out = base / f"{scenario}-{i}"
            run = measure(self.pharmload_cmd(dsn, tree, images, manifests, report), env=self.env, out=out,
                          server=self.srv, timeout=self.args.timeout)
            check_exit(run, (0, 1), f"pharmload {scenario} ({corpus.name})", out)  # 1: some files rejected
            rep = json.loads(report.read_text())
            run.extra.update(phases=rep.get("phases", {}), elapsed=rep.get("elapsed"), report={
                k: rep.get(k) for k in ("files_found", "files_loaded", "files_rejected", "files_skipped",
                                        "rows_staged", "rows_inserted", "rows_updated", "rows_unchanged",
                                        "images_referenced", "images_stored", "images_new_rows")})
            if scenario == "rerun" and (rep.get("rows_inserted", 0), rep.get("rows_updated", 0)) != (0, 0):
                raise BenchmarkError(f"pharmload rerun ({corpus.name}) wrote rows again: {run.extra['report']}")
            state = search_results_state(dsn)
            # a re-run must leave exactly the first load's end state; every run, exactly the first run's
            ref_key = (corpus.files, corpus.image_bytes, "incremental" if scenario == "incremental" else "reference")
            compare(f"pharmload {scenario} ({corpus.name})", state, expected, self.references.get(ref_key),
                    digest="digest", images=True)
            self.references.setdefault(ref_key, state)
            if scenario in wanted:
                self.record(corpus, "pharmload", scenario, expected.json_files, run, warm)
        self.srv.drop(name)

    def reference(self, corpus: Corpus) -> EndState:
        """pharmload's end state after a first load (an untimed load when pharmload is not a contender)."""
        key = (corpus.files, corpus.image_bytes, "reference")
        if key not in self.references:
            log(f"{corpus.name}: untimed pharmload load, as the reference end state")
            base = self.dir("reference")
            name, dsn = self.database("reference")
            out = base / "reference"
            run = measure(self.pharmload_cmd(dsn, corpus.root, base / "images", base / "manifests",
                                             base / "report.json"),
                          env=self.env, out=out, server=self.srv, timeout=self.args.timeout)
            check_exit(run, (0, 1), f"pharmload reference load ({corpus.name})", out)
            state = search_results_state(dsn)
            compare(f"pharmload reference load ({corpus.name})", state, corpus.expected, None, images=True)
            self.references[key] = state
            self.srv.drop(name)
        return self.references[key]

    def run_baseline(self, corpus: Corpus, i: int, warm: bool) -> None:
        reference = self.reference(corpus)
        base = self.dir("baseline")
        name, dsn = self.database("baseline")
        out = base / f"baseline-{i}"
        cmd = [self.python, "-m", "benchmarks.baseline", "--dsn", dsn, "--states-dir", str(corpus.root),
               "--tag", TAG, "--image-dir", str(base / "images")]
        run = measure(cmd, env=self.env, out=out, server=self.srv, timeout=self.args.timeout)
        check_exit(run, (0,), f"baseline ({corpus.name})", out)
        run.extra["summary"] = _last_json_line(out)
        compare(f"baseline ({corpus.name})", search_results_state(dsn), corpus.expected, reference,
                digest="digest", images=True)
        self.record(corpus, "baseline", "first", corpus.expected.json_files, run, warm)
        self.srv.drop(name)

    def run_dlt(self, corpus: Corpus, i: int, warm: bool) -> None:
        reference = self.reference(corpus)
        base = self.dir("dlt")
        name, dsn = self.database("dlt")
        out = base / f"dlt-{i}"
        env = {**self.env, "DLT_DATA_DIR": str(base / "data"), "DLT_PROJECT_DIR": str(base / "project"),
               "DLT_PIPELINE_DIR": str(base / "pipelines")}
        cmd = [self.python, "-m", "benchmarks.dlt_runner", "--dsn", dsn, "--states-dir", str(corpus.root),
               "--tag", TAG, "--dataset-name", DLT_DATASET, "--pipelines-dir", str(base / "pipelines")]
        run = measure(cmd, env=env, out=out, server=self.srv, timeout=self.args.timeout)
        check_exit(run, (0,), f"dlt ({corpus.name})", out)
        run.extra["summary"] = _last_json_line(out)
        compare(f"dlt ({corpus.name})", dlt_state(dsn), corpus.expected, reference)
        self.record(corpus, "dlt", "first", corpus.expected.json_files, run, warm)
        self.srv.drop(name)

    def floor_stage(self, corpus: Corpus) -> Path:
        """The final rows of a first load (pharmload's cleaning) as CSV per staging table, once per size."""
        key = (corpus.files, corpus.image_bytes)
        if key not in self.stage_cache:
            path = self.dir("floor-stage", corpus.name)
            subprocess.run([self.python, "-m", "benchmarks.floor", "stage", "--states-dir", str(corpus.root),
                            "--out-dir", str(path)], check=True, env=self.env, cwd=REPO, stdout=subprocess.DEVNULL)
            self.stage_cache[key] = path
        return self.stage_cache[key]

    def run_floor(self, corpus: Corpus, i: int, warm: bool, scenarios: Sequence[str]) -> None:
        base = self.dir("floor")
        if "read" in scenarios:
            out = base / f"read-{i}"
            cmd = [self.python, "-m", "benchmarks.floor", "read", "--states-dir", str(corpus.root),
                   "--workers", str(self.args.floor_workers)]
            run = measure(cmd, env=self.env, out=out, server=self.srv, timeout=self.args.timeout)
            check_exit(run, (0,), f"floor read ({corpus.name})", out)
            summary = _last_json_line(out)
            if (summary.get("files"), summary.get("screenshots_hashed")) != (corpus.expected.files,
                                                                            corpus.expected.png_files):
                raise BenchmarkError(f"floor read ({corpus.name}) read {summary}, expected "
                                     f"{corpus.expected.files} files and {corpus.expected.png_files} screenshots")
            run.extra["summary"] = summary
            self.record(corpus, "floor", "read", corpus.expected.json_files, run, warm)
        if "copy" in scenarios:
            reference = self.reference(corpus)
            stage = self.floor_stage(corpus)
            name, dsn = self.database("floor")
            dataset_id = floor.prepare_database(dsn, TAG)
            script = floor.write_copy_script(stage, dataset_id, base / "copy.sql")
            out = base / f"copy-{i}"
            run = measure(floor.psql_command(dsn, script), env=self.env, out=out, server=self.srv,
                          timeout=self.args.timeout)
            check_exit(run, (0,), f"floor copy ({corpus.name})", out)
            compare(f"floor copy ({corpus.name})", search_results_state(dsn, images=False), corpus.expected,
                    reference, digest="digest_no_image")
            self.record(corpus, "floor", "copy", corpus.expected.json_files, run, warm)
            self.srv.drop(name)

    # -- driver -------------------------------------------------------------------------------------

    def run_size(self, corpus: Corpus, contenders: Sequence[str], scenarios: Mapping[str, Sequence[str]],
                 runs: int, warmup: int) -> None:
        """Warm-up(s), then the timed runs; contenders interleaved so machine noise hits all alike."""
        for i in range(warmup + runs):
            warm = i < warmup
            for contender in contenders:
                if contender == "pharmload":
                    self.run_pharmload(corpus, i, warm, scenarios["pharmload"])
                elif contender == "baseline":
                    self.run_baseline(corpus, i, warm)
                elif contender == "dlt":
                    self.run_dlt(corpus, i, warm)
                elif contender == "floor":
                    self.run_floor(corpus, i, warm, scenarios["floor"])


def _last_json_line(out: Path) -> dict[str, Any]:
    lines = [ln for ln in out.with_suffix(".out").read_text(errors="replace").splitlines() if ln.startswith("{")]
    try:
        data = json.loads(lines[-1]) if lines else {}
    except ValueError:
        data = {}
    return data if isinstance(data, dict) else {}


# --------------------------------------------------------------------------------------------
# Summaries: JSON, Markdown
# --------------------------------------------------------------------------------------------


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def summarize(series: Series) -> dict[str, Any]:
    runs = series.runs
    walls = [r.wall for r in runs]
    wall = _median(walls)
    row: dict[str, Any] = {
        "contender": series.contender, "scenario": series.scenario, "files": series.files, "runs": len(runs),
        "wall_median": wall, "wall_min": min(walls), "wall_max": max(walls),
        "files_per_s": series.files / wall if wall > 0 else None,
        "cpu_median": _median([r.cpu for r in runs]),
        "rss_mb": max(r.rss_mb for r in runs), "tree_rss_mb": max(r.tree_rss_mb for r in runs),
        # None when no PSS sample saw the tree (a process shorter than PSS_EVERY samples)
        "tree_pss_mb": max(float(r.extra.get("tree_pss_mb", 0.0)) for r in runs) or None,
        "server_rss_mb": max(r.server_rss_mb for r in runs),
        "server_cpu_median": _median([r.server_cpu for r in runs]),
        "runs_detail": [asdict(r) for r in runs], "warmup_detail": [asdict(r) for r in series.warmup],
    }
    phases = [r.extra["phases"] for r in runs if r.extra.get("phases")]
    if phases:
        names = list(dict.fromkeys(k for p in phases for k in p))
        row["phases_median"] = {k: _median([float(p.get(k, 0.0)) for p in phases]) for k in names}
        elapsed = [float(r.extra["elapsed"]) for r in runs if r.extra.get("elapsed") is not None]
        row["in_process_median"] = _median(elapsed)
        row["report"] = runs[-1].extra.get("report")
    return row


def size_rows(per_size: dict[tuple[str, str], Series]) -> list[dict[str, Any]]:
    rows = [summarize(s) for s in per_size.values() if s.runs]
    floor_parts = {r["scenario"]: r for r in rows if r["contender"] == "floor"}
    if "read" in floor_parts and "copy" in floor_parts:
        a, b = floor_parts["read"], floor_parts["copy"]
        wall = a["wall_median"] + b["wall_median"]
        rows.append({"contender": "floor", "scenario": "read+copy", "files": a["files"], "runs": a["runs"],
                     "wall_median": wall, "wall_min": a["wall_min"] + b["wall_min"],
                     "wall_max": a["wall_max"] + b["wall_max"], "files_per_s": a["files"] / wall,
                     "cpu_median": a["cpu_median"] + b["cpu_median"], "rss_mb": max(a["rss_mb"], b["rss_mb"]),
                     "tree_rss_mb": max(a["tree_rss_mb"], b["tree_rss_mb"]),
                     "tree_pss_mb": max(a["tree_pss_mb"] or 0.0, b["tree_pss_mb"] or 0.0) or None,
                     "server_rss_mb": max(a["server_rss_mb"], b["server_rss_mb"]),
                     "server_cpu_median": a["server_cpu_median"] + b["server_cpu_median"], "derived": True})
    first = next((r for r in rows if (r["contender"], r["scenario"]) == ("pharmload", "first")), None)
    floor_total = next((r for r in rows if (r["contender"], r["scenario"]) == ("floor", "read+copy")), None)
    for r in rows:
        r["x_pharmload_first"] = r["wall_median"] / first["wall_median"] if first else None
        r["x_floor"] = r["wall_median"] / floor_total["wall_median"] if floor_total else None
    order = {(c, s): i for i, (c, s) in enumerate(
        [(c, s) for c in CONTENDERS for s in (*SCENARIOS[c], *(("read+copy",) if c == "floor" else ()))])}
    rows.sort(key=lambda r: order.get((r["contender"], r["scenario"]), 99))
    return rows


@dataclass(frozen=True)
class Target:
    """A speed target of the benchmark issue: pharmload's median at most `seconds` on the reference
    machine, where dlt took `dlt_seconds` (None: no peer was named)."""

    files: int
    image_bytes: int
    scenario: str
    seconds: float
    dlt_seconds: float | None


TARGETS = (
    Target(515, 100_000, "first", 0.6, 2.0),
    Target(20_000, 20_000, "first", 3.5, 16.0),
    Target(20_000, 20_000, "rerun", 0.5, None),
    Target(100_000, 2_000, "first", 14.0, 68.0),
)


def target_checks(files: int, image_bytes: int, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each target of this size against the run. Absolute times drift from machine to machine, so
    where dlt ran in the same run, the verdict is by ratio: dlt's median over pharmload's must reach
    the reference machine's (target 0.6 s where dlt took 2.0 s: 3.33x). Otherwise, by seconds."""
    medians = {(r["contender"], r["scenario"]): r["wall_median"] for r in rows}
    checks = []
    for t in TARGETS:
        ours = medians.get(("pharmload", t.scenario))
        if (t.files, t.image_bytes) != (files, image_bytes) or ours is None:
            continue
        dlt = medians.get(("dlt", "first"))
        check: dict[str, Any] = {"scenario": t.scenario, "target_s": t.seconds, "median_s": ours,
                                 "target_ratio": None, "ratio": None}
        if t.dlt_seconds is not None and dlt is not None:
            check.update(target_ratio=t.dlt_seconds / t.seconds, ratio=dlt / ours, dlt_s=dlt)
            check["met"] = check["ratio"] >= check["target_ratio"]
        else:
            check["met"] = ours <= t.seconds
        checks.append(check)
    return checks


def _target_line(c: dict[str, Any]) -> str:
    verdict = "met" if c["met"] else "MISSED"
    if c["ratio"] is None:
        return f"- target {c['scenario']} ≤ {c['target_s']:.2f} s: {c['median_s']:.2f} s, {verdict}"
    reference_dlt = c["target_s"] * c["target_ratio"]
    return (f"- target {c['scenario']} ≤ {c['target_s']:.2f} s where dlt takes {reference_dlt:.1f} s, "
            f"i.e. dlt/pharmload ≥ {c['target_ratio']:.2f}: here {c['median_s']:.2f} s against dlt's "
            f"{c['dlt_s']:.2f} s, {c['ratio']:.2f}, {verdict}")


def _fmt(value: float | None, digits: int = 2) -> str:
    if value is None or value != value:
        return "–"
    return f"{value:,.{digits}f}"


def _shape(size: dict[str, Any]) -> str:
    """The corpus's shape: what a correct load ends with."""
    pairs = f"{size['search_pairs']:,} pharmacy+state pairs, " if "search_pairs" in size else ""
    return (f"{size.get('profile', 'repeats')} profile: {size['files']:,} search files, "
            f"{size['expected_rows']:,} rows, {pairs}{size['expected_images']:,} distinct screenshots")


def markdown(result: dict[str, Any]) -> str:
    meta = result["meta"]
    lines = [
        f"## pharmload benchmark, {meta['date']}",
        "",
        f"{meta['cpus']} CPUs ({meta['machine']}), PostgreSQL {meta['server_version']} (embedded, "
        f"shared_buffers {meta['server_settings'].get('shared_buffers')}, fsync "
        f"{meta['server_settings'].get('fsync')}), Python {meta['python']}; {meta['runs']} timed runs after "
        f"{meta['warmup']} warm-up per contender, median (min–max); warm page cache; load average "
        f"{meta['loadavg_start']} at start, {meta.get('loadavg_end')} at end.",
        "",
    ]
    header = ("| contender | scenario | files | wall s, median (min–max) | files/s | CPU s | server CPU s | "
              "loader RSS MB | tree RSS / PSS MB | server RSS MB | × pharmload first | × floor |")
    for size in result["sizes"]:
        lines += [f"### {size['files']:,} files, ~{size['image_bytes']:,}-byte screenshots "
                  f"({_shape(size)})", "", header,
                  "|" + "---|" * 12]
        for r in size["rows"]:
            lines.append(
                f"| {r['contender']} | {r['scenario']} | {r['files']:,} | {_fmt(r['wall_median'])} "
                f"({_fmt(r['wall_min'])}–{_fmt(r['wall_max'])}) | {_fmt(r['files_per_s'], 0)} | "
                f"{_fmt(r['cpu_median'])} | {_fmt(r['server_cpu_median'])} | {_fmt(r['rss_mb'], 0)} | "
                f"{_fmt(r['tree_rss_mb'], 0)} / {_fmt(r.get('tree_pss_mb'), 0)} | "
                f"{_fmt(r['server_rss_mb'], 0)} | {_fmt(r['x_pharmload_first'])} | {_fmt(r['x_floor'])} |")
        phase_rows = [r for r in size["rows"] if r.get("phases_median")]
        if phase_rows:
            lines += ["", "pharmload phases (median s, from `--report-json`; in-process = the report's elapsed):", ""]
            for r in phase_rows:
                parts = ", ".join(f"{k} {v:.2f}" for k, v in r["phases_median"].items())
                startup = r["wall_median"] - r["in_process_median"]
                lines.append(f"- {r['scenario']}: in-process {r['in_process_median']:.2f} of {r['wall_median']:.2f} "
                             f"wall (start-up and exit {startup:.2f}); {parts}")
        for note in size.get("notes", []):
            lines.append(f"- {note}")
        lines += [_target_line(c) for c in size.get("targets", [])]
        lines.append("")
    mem = result.get("memory_check")
    if mem:
        verdict = "PASS" if mem["pass"] else "FAIL"
        lines += [f"### Memory check: pharmload first load of {mem['files']:,} files (~{mem['image_bytes']:,} B "
                  f"screenshots): {verdict}", "",
                  f"loader peak RSS (ru_maxrss) {mem['rss_mb']:.0f} MB; whole process tree: PSS "
                  f"{mem['tree_pss_mb']:.0f} MB, RSS summed {mem['tree_rss_mb']:.0f} MB; server "
                  f"{mem['server_rss_mb']:.0f} MB. Target: ru_maxrss and tree PSS ≤ {mem['target_mb']:.0f} MB. "
                  f"Wall {mem['wall']:.1f}s, CPU {mem['cpu']:.1f}s.", ""]
    lines += [
        "Columns: wall = whole process, interpreter start to exit; files/s = search files in the tree / median "
        "wall; CPU = user+system of the contender and all its descendants; server CPU = user+system of all server "
        "processes meanwhile; loader RSS = ru_maxrss (largest "
        "single process); tree RSS / PSS = peak summed RSS (every 50 ms; shared pages counted in every process) "
        "/ PSS (every 250 ms; shared pages split) of the contender's processes; server RSS = peak summed RSS of "
        "all server processes (every 50 ms; shared buffers counted in every process); × pharmload "
        "first = median wall / pharmload's first load; × floor = median wall / (floor read + floor copy).",
    ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def parse_sizes(text: str) -> list[tuple[int, int]]:
    sizes = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        files, _, image_bytes = part.partition(":")
        try:
            size = (int(files.replace("_", "")), int(image_bytes.replace("_", "")) if image_bytes else 100_000)
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad size {part!r}: want FILES:IMAGE_BYTES") from None
        if size[0] < 1 or size[1] < 1:
            raise argparse.ArgumentTypeError(f"bad size {part!r}: both numbers must be positive")
        sizes.append(size)
    if not sizes:
        raise argparse.ArgumentTypeError("no sizes given")
    return sizes


def parse_contenders(text: str) -> list[str]:
    names = [c.strip() for c in text.split(",") if c.strip()]
    unknown = [c for c in names if c not in CONTENDERS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown contender(s) {unknown}; choose from {', '.join(CONTENDERS)}")
    return list(dict.fromkeys(names))


def build_parser() -> argparse.ArgumentParser:
    uid = os.getuid()
    p = argparse.ArgumentParser(prog="python -m benchmarks.harness", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--sizes", type=parse_sizes, default="515:100000,20000:20000",
                   help="corpus sizes, FILES:IMAGE_BYTES,... (search files, approximate screenshot bytes)")
    p.add_argument("--runs", type=int, default=3, help="timed runs per contender and scenario")
    p.add_argument("--warmup", type=int, default=1, help="untimed (but checked) runs before them")
    p.add_argument("--contenders", type=parse_contenders, default=",".join(CONTENDERS),
                   help="which of " + ", ".join(CONTENDERS) + " to time")
    p.add_argument("--scenarios", default="first,rerun,incremental,read,copy",
                   help="pharmload scenarios (first, rerun, incremental) and floor parts (read, copy) to time")
    p.add_argument("--skip-slow", action="store_true", help="run the baseline only at the smallest size")
    p.add_argument("--seed", type=int, default=1, help="corpus seed")
    p.add_argument("--profile", choices=PROFILES, default="realistic",
                   help="corpus shape: realistic (each pharmacy+state searched about once, ~1.2 rows per file) "
                   "or repeats (the older, repeats-heavy corpus)")
    p.add_argument("--memory-check", type=parse_sizes, metavar="FILES:IMAGE_BYTES",
                   help="also one pharmload first load of this size, for its peak RSS (e.g. 1000000:1000)")
    p.add_argument("--memory-target-mb", type=float, default=1024.0,
                   help="the memory check passes when ru_maxrss and the process tree's PSS stay below this")
    p.add_argument("--work-dir", type=Path, default=Path(f"/var/tmp/pharmload-bench-{uid}"),
                   help="the server's data (pgdata/) and scratch space (runs/)")
    p.add_argument("--corpus-dir", type=Path, default=Path("/var/tmp/pharmload-bench-corpus"),
                   help="generated corpora, reused across runs")
    p.add_argument("--results-dir", type=Path, default=REPO / "benchmarks" / "results",
                   help="where the Markdown, JSON and PNG go")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG (matplotlib)")
    p.add_argument("--floor-workers", type=int, default=2, help="processes of the floor's read part")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds before one run is killed")
    p.add_argument("--python", type=Path, default=Path(sys.executable), help="interpreter for the contenders")
    return p


@contextlib.contextmanager
def _locked(work: Path) -> Iterator[None]:
    work.mkdir(parents=True, exist_ok=True)
    with open(work / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BenchmarkError(f"another benchmark is using {work}") from None
        yield


def _git() -> str:
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "loader", "sql"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return head + ("+uncommitted loader/sql changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    if str(args.work_dir.resolve()).startswith("/root"):
        raise BenchmarkError("--work-dir must not be under /root (the server's wheel makes its ancestors readable)")
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    chosen = {c: [s for s in SCENARIOS[c] if s in scenarios] for c in CONTENDERS}
    started = time.time()
    bench = Bench(args)
    result: dict[str, Any] = {"meta": {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "cpus": os.cpu_count(),
        "machine": f"{platform.machine()}, {platform.system()} {platform.release()}",
        "python": platform.python_version(), "git": _git(), "runs": args.runs, "warmup": args.warmup,
        "contenders": args.contenders, "scenarios": scenarios, "skip_slow": args.skip_slow, "seed": args.seed,
        "profile": args.profile, "corpus_version": CORPUS_VERSION,
        "loadavg_start": _loadavg(), "argv": sys.argv[1:],
    }, "sizes": []}
    with _locked(args.work_dir):
        leftover = bench.scratch.with_name("runs.old")  # an interrupted benchmark's: deleted after timing
        if bench.scratch.exists():
            shutil.rmtree(leftover, ignore_errors=True)
            bench.scratch.rename(leftover)
        corpora = [ensure_corpus(args.corpus_dir, f, b, args.seed, args.profile) for f, b in args.sizes]
        log(f"starting PostgreSQL in {args.work_dir / 'pgdata'}")
        bench.server = Server(args.work_dir / "pgdata")
        try:
            result["meta"].update(server_version=bench.srv.version, server_settings=bench.srv.settings)
            smallest = min(f for f, _ in args.sizes)
            for corpus in corpora:
                contenders = [c for c in CONTENDERS if c in args.contenders  # pharmload first: the reference
                              and not (c == "baseline" and args.skip_slow and corpus.files > smallest)]
                log(f"corpus {corpus.name}: {', '.join(contenders)}")
                bench.run_size(corpus, contenders, chosen, args.runs, args.warmup)
                size: dict[str, Any] = {
                    "files": corpus.files, "image_bytes": corpus.image_bytes, "seed": corpus.seed,
                    "profile": corpus.profile, "expected_rows": len(corpus.expected.keys),
                    "search_pairs": len({(st, n) for st, n, _ in corpus.expected.keys}),
                    "expected_images": len(corpus.expected.images),
                    "tree_files": corpus.expected.files,
                    "rows": size_rows(bench.series.get((corpus.files, corpus.image_bytes), {})), "notes": []}
                if "baseline" in args.contenders and "baseline" not in contenders:
                    size["notes"].append("baseline skipped at this size (--skip-slow)")
                if corpus.day_expected is not None:
                    size["notes"].append(
                        f"incremental: the tree plus one day ({corpus.day_expected.json_files - corpus.files:,} new "
                        f"files; {len(corpus.day_expected.keys):,} rows after); files/s counts the whole tree")
                size["targets"] = target_checks(corpus.files, corpus.image_bytes, size["rows"])
                result["sizes"].append(size)
            if args.memory_check:
                result["memory_check"] = memory_check(bench, args)
        finally:
            bench.server.close()
            shutil.rmtree(bench.scratch, ignore_errors=True)
            shutil.rmtree(leftover, ignore_errors=True)
    result["meta"]["loadavg_end"] = _loadavg()
    every = [r for per_size in bench.series.values() for ser in per_size.values() for r in ser.runs + ser.warmup]
    result["meta"]["cpu_includes_orphans"] = all(r.extra.get("subreaper") and not r.extra.get("orphans_left")
                                                 for r in every)
    result["meta"]["seconds"] = round(time.time() - started, 1)
    return result


def memory_check(bench: Bench, args: argparse.Namespace) -> dict[str, Any]:
    files, image_bytes = args.memory_check[0]
    corpus = ensure_corpus(args.corpus_dir, files, image_bytes, args.seed, args.profile)
    log(f"memory check: pharmload first load of {corpus.name}")
    base = bench.dir("memory")
    name, dsn = bench.database("memory")
    out = base / "memory"
    run = measure(bench.pharmload_cmd(dsn, corpus.root, base / "images", base / "manifests", base / "report.json"),
                  env=bench.env, out=out, server=bench.srv, timeout=args.timeout)
    check_exit(run, (0, 1), f"pharmload memory check ({corpus.name})", out)
    compare(f"pharmload memory check ({corpus.name})", search_results_state(dsn), corpus.expected, None,
            images=True)
    rep = json.loads((base / "report.json").read_text())
    bench.srv.drop(name)
    shutil.rmtree(base, ignore_errors=True)
    pss = float(run.extra["tree_pss_mb"])
    log(f"memory check: loader RSS {run.rss_mb:.0f} MB, tree RSS {run.tree_rss_mb:.0f} MB, tree PSS {pss:.0f} MB, "
        f"{run.wall:.1f}s")
    return {"files": files, "image_bytes": image_bytes, "wall": run.wall, "cpu": run.cpu, "rss_mb": run.rss_mb,
            "tree_rss_mb": run.tree_rss_mb, "tree_pss_mb": pss, "server_rss_mb": run.server_rss_mb,
            "target_mb": args.memory_target_mb, "phases": rep.get("phases", {}), "elapsed": rep.get("elapsed"),
            "pass": max(run.rss_mb, pss) <= args.memory_target_mb}


def write_results(result: dict[str, Any], results_dir: Path, plot: bool) -> list[Path]:
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    sizes = "_".join(f"{s['files']}x{s['image_bytes']}" for s in result["sizes"]) or "none"
    stem = results_dir / f"bench-{stamp}-{sizes}"
    paths = [stem.with_suffix(".json"), stem.with_suffix(".md")]
    paths[0].write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    paths[1].write_text(markdown(result), encoding="utf-8")
    if plot and result["sizes"]:
        from benchmarks.plot import plot as draw

        paths.append(draw(result, stem.with_suffix(".png")))
    return paths


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.runs < 1 or args.warmup < 0:
        print("harness: --runs must be >= 1 and --warmup >= 0", file=sys.stderr)
        return EXIT_USAGE
    try:
        result = run_benchmark(args)
    except BenchmarkError as exc:
        print(f"BENCHMARK FAILED: {exc}", file=sys.stderr)
        return EXIT_FAILED
    paths = write_results(result, args.results_dir, plot=not args.no_plot)
    sys.stdout.write(markdown(result))
    print("\nwritten: " + ", ".join(str(p) for p in paths), file=sys.stderr)
    mem = result.get("memory_check")
    return EXIT_MEMORY if mem and not mem["pass"] else EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
