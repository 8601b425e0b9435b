"""python -m benchmarks.harness: parse the arguments, run the benchmark, write and print the result."""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.corpus import CORPUS_VERSION, PROFILES
from benchmarks.harness import __doc__ as harness_doc
from benchmarks.harness.common import (
    CONTENDERS,
    EXIT_FAILED,
    EXIT_MEMORY,
    EXIT_OK,
    EXIT_USAGE,
    REPO,
    SCENARIOS,
    BenchmarkError,
    log,
)
from benchmarks.harness.contenders import Bench
from benchmarks.harness.corpora import ensure_corpus
from benchmarks.harness.endstate import compare, search_results_state
from benchmarks.harness.measure import check_exit, measure
from benchmarks.harness.report import markdown, write_results
from benchmarks.harness.server import Server
from benchmarks.harness.summary import size_rows
from benchmarks.harness.targets import target_checks


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
    p = argparse.ArgumentParser(prog="python -m benchmarks.harness", description=(harness_doc or "").split("\n\n")[0],
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
