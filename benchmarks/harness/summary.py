"""Summaries of the timed runs: medians, min-max and ratios per contender and scenario."""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from benchmarks.harness.common import CONTENDERS, SCENARIOS
from benchmarks.harness.contenders import Series
from benchmarks.harness.measure import Run


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def _run_share(run: Run, cpus: int) -> float:
    """The contender's and the server's CPU as a share of all cores over the run's wall time, %."""
    return 100.0 * (run.cpu + run.server_cpu) / (run.wall * cpus) if run.wall > 0 else float("nan")


def summarize(series: Series) -> dict[str, Any]:
    runs = series.runs
    cpus = os.cpu_count() or 1
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
        "run_busy_pct_median": _median([_run_share(r, cpus) for r in runs]),
        "machine_busy_pct_median": _median([r.machine_busy_pct for r in runs]),
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
                     "server_cpu_median": a["server_cpu_median"] + b["server_cpu_median"], "derived": True,
                     **{k: (a[k] * a["wall_median"] + b[k] * b["wall_median"]) / wall  # weighted by time
                        for k in ("run_busy_pct_median", "machine_busy_pct_median")}})
    first = next((r for r in rows if (r["contender"], r["scenario"]) == ("pharmload", "first")), None)
    floor_total = next((r for r in rows if (r["contender"], r["scenario"]) == ("floor", "read+copy")), None)
    for r in rows:
        r["x_pharmload_first"] = r["wall_median"] / first["wall_median"] if first else None
        r["x_floor"] = r["wall_median"] / floor_total["wall_median"] if floor_total else None
    order = {(c, s): i for i, (c, s) in enumerate(
        [(c, s) for c in CONTENDERS for s in (*SCENARIOS[c], *(("read+copy",) if c == "floor" else ()))])}
    rows.sort(key=lambda r: order.get((r["contender"], r["scenario"]), 99))
    return rows
