"""Upload throughput: a first Supabase load against the real Storage server, through our fault proxy
with latency added per request, for contenders that differ in how they upload.

    python -m benchmarks.uploads --sizes 2000:100000 --latencies 0,20,80 --runs 3 --contenders main@10,this@64

A contender is `REV@N`: the loader at git revision REV (`this`: the working tree) with
--max-concurrent-uploads N. Each run is a whole `python -m loader load --backend supabase` process
on a fresh database and a fresh bucket; the contenders take turns run by run. Reported: images/s
(screenshots stored / wall time of the load), median and min–max; the ratio to the same contender's
0 ms figure; lost screenshots (referenced by a row but not in the bucket afterwards); and the share
of requests answered 429 (all, and over the second half of the run: the steady state).
`--rate-limit R` makes the proxy refuse beyond R requests/s with 429s, as Supabase's gateway does.
Where the Storage kit (../shared/supabase-storage) is absent, it says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from benchmarks.harness.common import log
from benchmarks.harness.corpora import ensure_corpus
from benchmarks.harness.server import Server

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "RESULTS.md"


@dataclass(frozen=True)
class Contender:
    rev: str
    concurrency: int

    @property
    def label(self) -> str:
        return f"{self.rev}@{self.concurrency}"


@dataclass
class Run:
    images: int
    seconds: float
    lost: int
    requests: int
    throttled: int
    throttled_late: int  # 429s in the second half of the requests

    @property
    def rate(self) -> float:
        return self.images / self.seconds


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.uploads", description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="2000:100000", help="FILES:IMAGE_BYTES[,...] (realistic corpora)")
    p.add_argument("--latencies", default="0,20,80", help="milliseconds added per request by the proxy")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--contenders", default="main@10,this@64", help="REV@N[,...]; REV `this` is the working tree")
    p.add_argument("--no-warmup", action="store_true", help="skip the untimed warm-up run of each contender")
    p.add_argument("--rate-limit", type=float, default=None, help="the proxy answers 429 beyond this many requests/s")
    p.add_argument("--work-dir", type=Path, default=Path(f"/var/tmp/pharmload-bench-uploads-{os.getuid()}"))
    p.add_argument("--corpus-dir", type=Path, default=Path("/var/tmp/pharmload-bench-corpus"))
    p.add_argument("--update-results", action="store_true", help="replace the supabase-uploads section of RESULTS.md")
    return p.parse_args(argv)


def source(rev: str, work: Path) -> Path:
    """A checkout of the loader at rev (the working tree for `this`)."""
    if rev == "this":
        return REPO
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", rev], check=True, capture_output=True,
                            text=True).stdout.strip()
    dest = work / f"src-{commit[:12]}"
    if not dest.is_dir():
        tmp = Path(tempfile.mkdtemp(dir=work))
        archive = subprocess.run(["git", "-C", str(REPO), "archive", commit], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive, check=True)
        tmp.rename(dest)
    return dest


def one_run(c: Contender, src: Path, root: Path, pg: Server, storage: object, latency_ms: float,
            rate_limit: float | None, work: Path, state: Path) -> Run:
    from loader.stores.supabase import SupabaseStore
    from tests.support.faultproxy import FaultProxy

    url, key, bare = storage.url, storage.key, storage.storage_url  # type: ignore[attr-defined]
    db, bucket = f"bench_up_{uuid.uuid4().hex[:8]}", f"bench-{uuid.uuid4().hex[:10]}"
    dsn = pg.create(db)
    report = work / "report.json"
    args = [sys.executable, "-m", "loader", "load", "--backend", "supabase", "--dsn", dsn, "--states-dir", str(root),
            "--tag", "bench", "--bucket", bucket, "--max-concurrent-uploads", str(c.concurrency),
            "--report-json", str(report), "--manifest-dir", str(work / "manifests" / db), "--rejects",
            str(work / "rejects.jsonl")]
    try:
        with FaultProxy(bare, latency=latency_ms / 1000, rate_limit=rate_limit) as proxy:
            env = {**os.environ, "SUPABASE_URL": proxy.url, "SUPABASE_SERVICE_KEY": key, "PYTHONPATH": str(src)}
            start = time.perf_counter()
            done = subprocess.run(args, cwd=src, env=env, capture_output=True, text=True)
            seconds = time.perf_counter() - start
            seen = list(proxy.seen)
        if done.returncode not in (0, 1):
            raise RuntimeError(f"{c.label} failed ({done.returncode}): {done.stderr[-2000:]}")
        stored = json.loads(report.read_text())["images_stored"]
        import psycopg

        with psycopg.connect(dsn) as conn:
            wanted = {h for (h,) in conn.execute("SELECT DISTINCT image_hash FROM search_results "
                                                 "WHERE image_hash IS NOT NULL").fetchall()}
        have = {o.key.rsplit("/", 1)[-1].removesuffix(".png") for o in SupabaseStore(url, key, bucket).objects()}
        late = seen[len(seen) // 2:]
        return Run(stored, seconds, len(wanted - have), len(seen), sum(s.status == 429 for s in seen),
                   sum(s.status == 429 for s in late))
    finally:
        pg.drop(db)
        for folder in state.glob(f"data/*/{bucket}"):  # the objects' bytes; their rows are small
            shutil.rmtree(folder, ignore_errors=True)


def fmt(values: list[float], digits: int = 0) -> str:
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def table(results: dict[tuple[str, float, str], list[Run]], sizes: list[tuple[int, int]], shots: dict[str, int],
          latencies: list[float], contenders: list[Contender], rate_limit: float | None) -> str:
    lines = ["| screenshots | added latency | contender | images/s median (min–max) | vs its 0 ms | lost | "
             "429s (all / 2nd half) |", "|---|---|---|---|---|---|---|"]
    for files, size in sizes:
        name = f"{files}:{size}"
        for lat in latencies:
            for c in contenders:
                runs = results[(name, lat, c.label)]
                base = results.get((name, 0.0, c.label))
                ratio = (f"{statistics.median(r.rate for r in runs) / statistics.median(r.rate for r in base):.2f}"
                         if base else "–")
                req = sum(r.requests for r in runs)
                late = sum(r.requests - r.requests // 2 for r in runs)
                share = (f"{100 * sum(r.throttled for r in runs) / req:.1f}% / "
                         f"{100 * sum(r.throttled_late for r in runs) / late:.1f}%")
                lines.append(f"| {shots[name]:,} × {size // 1000} KB | {lat:g} ms | {c.label} | "
                             f"{fmt([r.rate for r in runs])} | {ratio} | {sum(r.lost for r in runs)} | {share} |")
    note = f"; the proxy refuses beyond {rate_limit:g} requests/s (429)" if rate_limit else ""
    return "\n".join(lines) + f"\n\nRuns per cell: {len(runs)}{note}.\n"


def update_results(text: str, rate_limit: float | None) -> None:
    """Replace this kind of run's block of RESULTS.md (one without a rate limit, one per rate limit)."""
    name = "supabase-uploads" + (f" rate-limit={rate_limit:g}" if rate_limit else "")
    mark = f"<!-- {name} -->", f"<!-- /{name} -->"
    current = RESULTS.read_text()
    block = f"{mark[0]}\n{text}{mark[1]}"
    if mark[0] in current:
        current = re.sub(re.escape(mark[0]) + ".*?" + re.escape(mark[1]), lambda _: block, current, flags=re.S)
    else:
        current = current.rstrip("\n") + "\n\n" + block + "\n"
    RESULTS.write_text(current)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    sys.path.insert(0, str(REPO))
    from tests.support import storage_kit

    kit = storage_kit.kit()
    if kit is None:
        print(f"bench-supabase skipped: {storage_kit.absent()}")
        return 0
    sizes = [(int(f), int(b)) for f, b in (s.split(":") for s in a.sizes.split(","))]
    latencies = [float(x) for x in a.latencies.split(",")]
    contenders = [Contender(rev, int(n)) for rev, n in (c.split("@") for c in a.contenders.split(","))]
    a.work_dir.mkdir(parents=True, exist_ok=True)
    sources = {c.rev: source(c.rev, a.work_dir) for c in contenders}
    pg = Server(a.work_dir / "pgdata")
    state = a.work_dir / "storage"
    shutil.rmtree(state, ignore_errors=True)
    results: dict[tuple[str, float, str], list[Run]] = {}
    shots: dict[str, int] = {}
    for storage in storage_kit.serve(pg.dsn("postgres"), state, kit):
        log(f"supabase storage server: {storage.version}")
        for files, size in sizes:
            corpus = ensure_corpus(a.corpus_dir, files, size, 1, "realistic")
            name = f"{files}:{size}"
            shots[name] = len({p for p in corpus.expected.images})
            for c in [] if a.no_warmup else contenders:  # untimed warm-up
                one_run(c, sources[c.rev], corpus.root, pg, storage, 0, None, a.work_dir, state)
            for lat in latencies:
                for i in range(a.runs):
                    for c in contenders:
                        run = one_run(c, sources[c.rev], corpus.root, pg, storage, lat, a.rate_limit, a.work_dir,
                                      state)
                        results.setdefault((name, lat, c.label), []).append(run)
                        log(f"{name} {lat:g} ms {c.label} run {i + 1}: {run.rate:.0f} images/s, lost {run.lost}, "
                            f"429s {run.throttled}/{run.requests}")
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    text = (f"First Supabase load through the fault proxy, real Storage server "
            f"{storage_kit.version(kit, storage_kit.build(kit))}; `python -m benchmarks.uploads "
            f"{' '.join(argv if argv is not None else sys.argv[1:])}` "
            f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, at {head})\n\n"
            + table(results, sizes, shots, latencies, contenders, a.rate_limit))
    print(text)
    out = REPO / "benchmarks" / "results" / "raw" / f"uploads-{time.strftime('%Y%m%d-%H%M%S')}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    if a.update_results:
        update_results(text, a.rate_limit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
