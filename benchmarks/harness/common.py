"""What every part of the harness shares: names, constants, the error that voids a benchmark, the log."""

from __future__ import annotations

import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONTENDERS = ("pharmload", "baseline", "dlt", "floor")
SCENARIOS = {"pharmload": ("first", "rerun", "incremental"), "baseline": ("first",), "dlt": ("first",),
             "floor": ("read", "copy")}
TAG = "bench-scrape"
DLT_DATASET = "pharmload_dlt"
MB = 1024 * 1024
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_MEMORY = 0, 1, 2, 3

Key = tuple[str, str, str | None]


class BenchmarkError(Exception):
    """A contender failed, or its end state is not pharmload's: the benchmark is void."""


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
