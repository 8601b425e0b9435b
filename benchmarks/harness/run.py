"""Running a benchmark: the corpora, the server, every size's contenders, the memory check."""

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

from benchmarks.corpus import CORPUS_VERSION
from benchmarks.harness import fs
from benchmarks.harness.common import CONTENDERS, REPO, SCENARIOS, BenchmarkError, log
from benchmarks.harness.contenders import Bench
from benchmarks.harness.corpora import Corpus, ensure_corpus
from benchmarks.harness.endstate import compare, search_results_state
from benchmarks.harness.measure import check_exit, measure
from benchmarks.harness.server import Server
from benchmarks.harness.summary import size_rows
from benchmarks.harness.targets import MEMORY_TARGET, memory_verdict, target_checks


@contextlib.contextmanager
def _locked(work: Path) -> Iterator[None]:
    work.mkdir(parents=True, exist_ok=True)
    with open(work / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BenchmarkError(f"another benchmark is using {work}") from None
        yield


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True).stdout.strip()


def _commits() -> dict[str, str]:
    """The commit checked out, and the last commit of the code measured (loader/ and sql/)."""
    try:
        dirty = "+uncommitted loader/sql changes" if _git("status", "--porcelain", "loader", "sql") else ""
        return {"git": _git("rev-parse", "--short", "HEAD") + dirty,
                "loader_commit": _git("log", "-1", "--format=%h", "--", "loader", "sql") + dirty}
    except (OSError, subprocess.CalledProcessError):
        return {"git": "unknown", "loader_commit": "unknown"}


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
        "python": platform.python_version(), **_commits(), "runs": args.runs, "warmup": args.warmup,
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
        result["meta"]["fs_settle_waited"] = round(fs.settle(args.work_dir, args.fs_settle))
        log(f"starting PostgreSQL in {args.work_dir / 'pgdata'}")
        bench.server = Server(args.work_dir / "pgdata")
        try:
            result["meta"].update(server_version=bench.srv.version, server_settings=bench.srv.settings,
                                  fs_create_us_start=round(fs.create_cost_us(bench.scratch), 1))
            smallest = min(f for f, _ in args.sizes)
            for corpus in corpora:
                contenders = [c for c in CONTENDERS if c in args.contenders  # pharmload first: the reference
                              and not (c == "baseline" and args.skip_slow and corpus.files > smallest)]
                log(f"corpus {corpus.name}: {', '.join(contenders)}")
                bench.run_size(corpus, contenders, chosen, args.runs, args.warmup)
                size = _size_result(bench, corpus)
                if "baseline" in args.contenders and "baseline" not in contenders:
                    size["notes"].append("baseline skipped at this size (--skip-slow)")
                result["sizes"].append(size)
            if args.memory_check:
                mem = result["memory_check"] = memory_check(bench, args)
                reference = next((r["wall_median"] for size in result["sizes"] for r in size["rows"]
                                  if size["files"] == MEMORY_TARGET.reference_files
                                  and (r["contender"], r["scenario"]) == ("pharmload", "first")), None)
                mem["verdict"] = memory_verdict(mem, reference)
            result["meta"]["fs_create_us_end"] = round(fs.create_cost_us(bench.scratch), 1)
        finally:
            bench.server.close()
            shutil.rmtree(bench.scratch, ignore_errors=True)
            shutil.rmtree(leftover, ignore_errors=True)
            fs.note_cleanup(args.work_dir)
    result["meta"]["loadavg_end"] = _loadavg()
    every = [r for per_size in bench.series.values() for ser in per_size.values() for r in ser.runs + ser.warmup]
    result["meta"]["cpu_includes_orphans"] = all(r.extra.get("subreaper") and not r.extra.get("orphans_left")
                                                 for r in every)
    result["meta"]["seconds"] = round(time.time() - started, 1)
    return result


def _size_result(bench: Bench, corpus: Corpus) -> dict[str, Any]:
    """One size's summary: the corpus's shape, the contenders' rows, notes, the targets' checks."""
    expected = corpus.expected
    size: dict[str, Any] = {
        "files": corpus.files, "image_bytes": corpus.image_bytes, "seed": corpus.seed, "profile": corpus.profile,
        "expected_rows": len(expected.keys), "search_pairs": len({(st, n) for st, n, _ in expected.keys}),
        "expected_images": len(expected.images), "tree_files": expected.files,
        "rows": size_rows(bench.series.get((corpus.files, corpus.image_bytes), {})), "notes": []}
    if corpus.day_expected is not None:
        size["notes"].append(
            f"incremental: the tree plus one day ({corpus.day_expected.json_files - corpus.files:,} new "
            f"files; {len(corpus.day_expected.keys):,} rows after); files/s counts the whole tree")
    size["targets"] = target_checks(corpus.files, corpus.image_bytes, size["rows"])
    return size


def memory_check(bench: Bench, args: argparse.Namespace) -> dict[str, Any]:
    files, image_bytes = args.memory_check[0]
    corpus = ensure_corpus(args.corpus_dir, files, image_bytes, args.seed, args.profile)
    log(f"memory check: pharmload first load of {corpus.name}")
    base = bench.dir("memory")
    name, dsn = bench.database("memory")
    out = base / "memory"
    warm = fs.warm_tree(corpus.root)
    log(f"memory check: read the tree in {warm:.0f}s (page cache)")
    before = fs.vm_counters()
    run = measure(bench.pharmload_cmd(dsn, corpus.root, base / "images", base / "manifests", base / "report.json"),
                  env=bench.env, out=out, server=bench.srv, timeout=args.timeout)
    vm = {k: v - before[k] for k, v in fs.vm_counters().items() if k in before}
    check_exit(run, (0, 1), f"pharmload memory check ({corpus.name})", out)
    compare(f"pharmload memory check ({corpus.name})", search_results_state(dsn), corpus.expected, None,
            images=True)
    rep = json.loads((base / "report.json").read_text())
    bench.srv.drop(name)
    shutil.rmtree(base, ignore_errors=True)
    pss = float(run.extra["tree_pss_mb"])
    log(f"memory check: loader RSS {run.rss_mb:.0f} MB, tree RSS {run.tree_rss_mb:.0f} MB, tree PSS {pss:.0f} MB, "
        f"{run.wall:.1f}s")
    return {"files": files, "image_bytes": image_bytes, "profile": corpus.profile, "wall": run.wall, "cpu": run.cpu,
            "server_cpu": run.server_cpu, "busy_pct": run.machine_busy_pct, "rss_mb": run.rss_mb,
            "tree_rss_mb": run.tree_rss_mb, "tree_pss_mb": pss, "server_rss_mb": run.server_rss_mb,
            "expected_rows": len(corpus.expected.keys), "expected_images": len(corpus.expected.images),
            "target_mb": args.memory_target_mb, "phases": rep.get("phases", {}), "elapsed": rep.get("elapsed"),
            "tree_warm_s": round(warm, 1), "vm": vm,
            "pass": max(run.rss_mb, pss) <= args.memory_target_mb}


