"""python -m benchmarks.corpus OUT --files N --image-bytes B --profile realistic"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import orjson

from benchmarks.corpus.spec import PROFILES, CorpusSpec
from benchmarks.corpus.writer import add_day, generate


def main(argv: list[str] | None = None) -> int:
    defaults = CorpusSpec()
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.corpus",
        description="Write a deterministic synthetic pharmacy scrape (see FORMAT.md).",
    )
    parser.add_argument("out", type=Path, help="output directory (the loader's --states-dir)")
    parser.add_argument("--files", type=int, default=defaults.files, help="number of *_parse.json files")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--image-bytes", type=int, default=defaults.image_bytes, help="approx. PNG size")
    parser.add_argument("--days", type=int, default=defaults.days, help="number of day folders")
    parser.add_argument("--broken-fraction", type=float, default=defaults.broken_fraction)
    parser.add_argument("--start-day", default=defaults.start_day)
    parser.add_argument(
        "--profile", choices=PROFILES, default=defaults.profile,
        help="realistic: each pharmacy+state searched about once, ~1.2 rows per file; "
        "repeats: ~40 pharmacies searched again and again (the older benchmark corpus)",
    )  # fmt: skip
    parser.add_argument(
        "--add-day", type=int, metavar="K", help="only add day folder number K (0-based) to an existing tree"
    )
    args = parser.parse_args(argv)
    spec = CorpusSpec(
        files=args.files,
        seed=args.seed,
        image_bytes=args.image_bytes,
        days=args.days,
        broken_fraction=args.broken_fraction,
        start_day=args.start_day,
        profile=args.profile,
    )
    started = time.perf_counter()
    try:
        stats = generate(args.out, spec) if args.add_day is None else add_day(args.out, spec, args.add_day)
    except (FileExistsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    summary = stats.summary()
    summary["seconds"] = round(time.perf_counter() - started, 3)
    sys.stdout.write(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0
