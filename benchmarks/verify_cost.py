"""What verification costs: `python -m benchmarks.verify_cost` (run it under
`flock -x /tmp/pharmload-cpu.lock`).

On one realistic corpus (default 20,000 files @20 KB), each run times as whole processes, on a
fresh database and store: a first load, the same with --verify-writes, an unchanged re-run, the
re-run with --verify-writes (digests from the sidecar), `pharmload verify --states-dir` (parses
the scrape again), the same with --deep (re-hashes every stored screenshot) and `pharmload verify`
without a scrape (screenshots only). Reports medians with min–max and the ratio to the first load
measured in the same run. Every verification must end `ok`: the corpus loads exactly.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.harness.corpora import ensure_corpus
from benchmarks.harness.server import Server

STEPS = ("load", "load --verify-writes", "rerun", "rerun --verify-writes", "verify --states-dir",
         "verify --states-dir --deep", "verify (screenshots only)")


def _cmd(step: str, dsn: str, tree: Path, work: Path) -> list[str]:
    command = "verify" if step.startswith("verify") else "load"
    args = [sys.executable, "-m", "loader", command, "--backend", "postgresql", "--dsn", dsn, "--tag", "bench",
            "--image-dir", str(work / "images")]
    if command == "load":
        args += ["--states-dir", str(tree), "--manifest-dir", str(work / "manifests")]
        args += ["--verify-writes"] if "--verify-writes" in step else []
    else:
        args += ["--states-dir", str(tree)] if "--states-dir" in step else []
        args += ["--deep"] if "--deep" in step else []
    return args


def _timed(step: str, dsn: str, tree: Path, work: Path) -> float:
    t0 = time.perf_counter()
    res = subprocess.run(_cmd(step, dsn, tree, work), capture_output=True, text=True, env=dict(os.environ))
    elapsed = time.perf_counter() - t0
    ok = (0, 1) if step.startswith(("load", "rerun")) else (0,)  # 1: the corpus's broken files were rejected
    if res.returncode not in ok:
        raise SystemExit(f"{step}: exit {res.returncode}\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}")
    if "verify" in step and "verify: ok" not in res.stdout + res.stderr and "Verify: ok" not in res.stderr:
        raise SystemExit(f"{step}: did not verify ok\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}")
    return elapsed


def _fresh(server: Server, work: Path) -> str:
    for sub in ("images", "manifests"):
        shutil.rmtree(work / sub, ignore_errors=True)
    return server.create("bench_verify")


def one_run(server: Server, tree: Path, work: Path) -> dict[str, float]:
    """Each step once; the two first loads each on a fresh database, the rest after the second."""
    times = {"load": _timed("load", _fresh(server, work), tree, work)}
    dsn = _fresh(server, work)
    for step in STEPS[1:]:
        times[step] = _timed(step, dsn, tree, work)
    return times


def _sidecar_bytes(work: Path) -> int:
    return sum(p.stat().st_size for p in (work / "manifests").glob("*.digests.parquet"))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.verify_cost", description=__doc__.splitlines()[0])
    p.add_argument("--files", type=int, default=20_000)
    p.add_argument("--image-bytes", type=int, default=20_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--work-dir", type=Path, default=Path(f"/var/tmp/pharmload-bench-verify-{os.getuid()}"))
    p.add_argument("--corpus-dir", type=Path, default=Path("/var/tmp/pharmload-bench-corpus"))
    args = p.parse_args(argv)
    corpus = ensure_corpus(args.corpus_dir, args.files, args.image_bytes, args.seed, "realistic")
    args.work_dir.mkdir(parents=True, exist_ok=True)
    server = Server(args.work_dir / "pgdata")
    try:
        _timed("load", _fresh(server, args.work_dir), corpus.root, args.work_dir)  # warm-up, untimed
        runs = [one_run(server, corpus.root, args.work_dir) for _ in range(args.runs)]
        sidecar = _sidecar_bytes(args.work_dir)
    finally:
        server.drop("bench_verify")
        server.close()
    base = statistics.median(r["load"] for r in runs)
    print(f"verify cost: {corpus.name} ({corpus.files:,} search files, {len(corpus.expected.keys):,} rows, "
          f"{len(corpus.expected.images):,} screenshots), {args.runs} runs, cpus {os.cpu_count()}")
    print(f"{'step':<28} {'median s':>9} {'min–max s':>15} {'× load':>7}")
    for step in STEPS:
        values = [r[step] for r in runs]
        med = statistics.median(values)
        print(f"{step:<28} {med:9.2f} {min(values):7.2f}–{max(values):<7.2f} {med / base:7.2f}")
    print(f"digests sidecar: {sidecar / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
