"""What the independent local store costs (issue 15): a first load with hard links and no sync (the
store as it was), with hard links and the sync phase, and with copies and the sync phase (the
default now); and the unchanged re-run, which now also stats every loaded file's screenshot.

    flock -x /tmp/pharmload-cpu.lock python -m benchmarks.store_cost [--sizes 20000x20000,100000x2000]

Each run is a whole `python -m loader load` process on a fresh database and a fresh store; the
three ways take turns run by run, so the machine's noise hits them alike. Medians of --runs with
min–max, and each way's ratio to the link/no-sync median of the same run. "link, no sync" is the
loader of today with its sync phase made a no-op (nothing else differs).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.harness.common import log
from benchmarks.harness.corpora import ensure_corpus
from benchmarks.harness.server import Server

REPO = Path(__file__).resolve().parents[1]
WAYS = ("link, no sync", "link + sync", "copy + sync")
RERUN = "unchanged re-run (copy)"
# The loader's own command line, with LocalStore.sync made a no-op for the "no sync" way.
NO_SYNC = ("import sys; from loader.stores import local; local.LocalStore.sync = lambda self: None; "
           "from loader.cli import main; main()")
WITH_SYNC = "from loader.cli import main; main()"


def _sizes(text: str) -> list[tuple[int, int]]:
    return [(int(f), int(b)) for f, b in (part.split("x") for part in text.split(","))]


def _load(python: str, code: str, dsn: str, tree: Path, images: Path, manifests: Path, link: str, report: Path,
          env: dict[str, str]) -> tuple[float, dict[str, float]]:
    """Wall seconds of one load process, and its phases."""
    cmd = [python, "-c", code, "load", "--backend", "postgresql", "--dsn", dsn, "--states-dir", str(tree),
           "--tag", "store-cost", "--image-dir", str(images), "--manifest-dir", str(manifests),
           "--image-link", link, "--report-json", str(report)]
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if proc.returncode not in (0, 1):  # 1: the corpus's broken files are rejected
        raise SystemExit(f"load failed ({proc.returncode}): {proc.stderr[-2000:]}")
    phases: dict[str, float] = json.loads(report.read_text())["phases"]
    return wall, phases


def _stat(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})"


def measure(server: Server, corpus_root: Path, name: str, runs: int, work: Path, python: str,
            env: dict[str, str]) -> dict[str, dict[str, list[float]]]:
    """{way: {"wall": [...], "sync": [...], "store": [...]}} over runs (after one untimed warm-up)."""
    found: dict[str, dict[str, list[float]]] = {w: {"wall": [], "sync": [], "store": []} for w in (*WAYS, RERUN)}
    for i in range(runs + 1):
        for j, way in enumerate(WAYS):
            scratch = work / f"{name}-{i}-{j}"
            dsn = server.create(f"bench_store_{j}")
            link = "link" if way.startswith("link") else "copy"
            code = NO_SYNC if way == "link, no sync" else WITH_SYNC
            args = (dsn, corpus_root, scratch / "images", scratch / "manifests", link, scratch / "report.json", env)
            wall, phases = _load(python, code, *args)
            if i:  # run 0 warms the page cache and the interpreter's bytecode
                found[way]["wall"].append(wall)
                found[way]["sync"].append(phases.get("sync", 0.0))
                found[way]["store"].append(phases.get("store", 0.0))
            log(f"{name} {'warm-up' if not i else f'run {i}'} {way}: {wall:.2f}s (sync {phases.get('sync', 0):.2f}s, "
                f"store {phases.get('store', 0):.2f}s)")
            if way == "copy + sync":
                wall, phases = _load(python, code, *args)
                if i:
                    found[RERUN]["wall"].append(wall)
                    found[RERUN]["sync"].append(phases.get("sync", 0.0))
                    found[RERUN]["store"].append(phases.get("check", 0.0))
                log(f"{name} {RERUN}: {wall:.2f}s (check {phases.get('check', 0):.3f}s)")
            server.drop(f"bench_store_{j}")
    return found


def table(name: str, found: dict[str, dict[str, list[float]]]) -> str:
    base = statistics.median(found[WAYS[0]]["wall"])
    lines = [f"### {name}", "", "| way | wall s, median (min–max) | × link, no sync | sync phase s | store phase s |",
             "|---|---|---|---|---|"]
    for way in WAYS:
        f = found[way]
        lines.append(f"| {way} | {_stat(f['wall'])} | {statistics.median(f['wall']) / base:.2f} | "
                     f"{_stat(f['sync'])} | {_stat(f['store'])} |")
    f = found[RERUN]
    lines.append(f"| {RERUN} | {_stat(f['wall'])} | | | check {_stat(f['store'])} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.store_cost", description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=_sizes, default=_sizes("20000x20000,100000x2000"),
                   help="files x image bytes, comma-separated")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--profile", default="realistic")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--work-dir", type=Path, default=Path(f"/var/tmp/pharmload-bench-store-{os.getuid()}"))
    p.add_argument("--corpus-dir", type=Path, default=Path("/var/tmp/pharmload-bench-corpus"))
    args = p.parse_args(argv)
    for package in ("loader", "sql", "benchmarks"):
        compileall.compile_dir(REPO / package, quiet=1)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PHARMLOAD_", "PG"))}
    env.update({"LC_ALL": "C.UTF-8", "PYTHONUNBUFFERED": "1"})
    work = args.work_dir / time.strftime("%Y%m%d-%H%M%S")
    work.mkdir(parents=True)
    server = Server(args.work_dir / "pgdata")
    out = []
    try:
        for files, image_bytes in args.sizes:
            corpus = ensure_corpus(args.corpus_dir, files, image_bytes, args.seed, args.profile)
            name = f"{files} files @{image_bytes // 1000} KB ({args.profile})"
            found = measure(server, corpus.root, f"{files}x{image_bytes}", args.runs, work, sys.executable, env)
            out.append(table(name, found))
            (work / f"{files}x{image_bytes}.json").write_text(json.dumps(found))
    finally:
        server.close()
    print("\n\n".join(out))
    log(f"scratch folders (stores, manifests, reports) are in {work}; remove them when done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
