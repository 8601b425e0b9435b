"""python -m benchmarks.harness: parse the arguments, run the benchmark, write and print the result."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from benchmarks.corpus import PROFILES
from benchmarks.harness import __doc__ as harness_doc
from benchmarks.harness import results
from benchmarks.harness.common import (
    CONTENDERS,
    EXIT_FAILED,
    EXIT_MEMORY,
    EXIT_OK,
    EXIT_USAGE,
    REPO,
    BenchmarkError,
)
from benchmarks.harness.report import markdown, write_results
from benchmarks.harness.run import run_benchmark


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
                   help="also one pharmload first load of this size, for its peak memory and its time against "
                   "the 100,000-file first load (e.g. 1000000:2000)")
    p.add_argument("--memory-target-mb", type=float, default=1024.0,
                   help="the memory check passes when ru_maxrss and the process tree's PSS stay below this")
    p.add_argument("--work-dir", type=Path, default=Path(f"/var/tmp/pharmload-bench-{uid}"),
                   help="the server's data (pgdata/) and scratch space (runs/)")
    p.add_argument("--corpus-dir", type=Path, default=Path("/var/tmp/pharmload-bench-corpus"),
                   help="generated corpora, reused across runs")
    p.add_argument("--results-dir", type=Path, default=REPO / "benchmarks" / "results" / "raw",
                   help="where every run's Markdown, JSON and PNG go (git ignores the default)")
    p.add_argument("--update-results", action="store_true",
                   help="also replace this kind of run's section of --results-file (and its plot) and add a row "
                   "to its history")
    p.add_argument("--results-file", type=Path, default=REPO / "benchmarks" / "RESULTS.md",
                   help="the committed results that --update-results updates; plots go to results/ beside it")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG (matplotlib)")
    p.add_argument("--floor-workers", type=int, default=2, help="processes of the floor's read part")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds before one run is killed")
    p.add_argument("--python", type=Path, default=Path(sys.executable), help="interpreter for the contenders")
    p.add_argument("--fs-settle", type=float, default=600.0, metavar="SECONDS",
                   help="wait until the harness's last clean-up of its scratch folders is this old: on ext4 "
                        "without a journal, files created soon after a mass deletion cost several times more")
    return p


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
    if args.update_results:
        plot = None
        if not args.no_plot and result["sizes"]:
            from benchmarks.plot import plot as draw

            plot = draw(result, args.results_file.parent / "results" / f"{results.kind(result)}.png")
            paths.append(plot)
        results.update(args.results_file, result, plot)
        paths.append(args.results_file)
    sys.stdout.write(markdown(result))
    print("\nwritten: " + ", ".join(str(p) for p in paths), file=sys.stderr)
    mem = result.get("memory_check")
    return EXIT_MEMORY if mem and not mem["pass"] else EXIT_OK
