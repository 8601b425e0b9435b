"""Plot a benchmark result: files/s and peak RSS against corpus size, one line per contender.

    python -m benchmarks.plot benchmarks/results/raw/bench-....json [--out FILE.png]

Reads the JSON the harness writes; draws with matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

STYLE: dict[tuple[str, str], tuple[str, str, str]] = {  # (color, line style, marker)
    ("pharmload", "first"): ("tab:blue", "-", "o"),
    ("pharmload", "rerun"): ("tab:blue", "--", "s"),
    ("pharmload", "incremental"): ("tab:blue", ":", "^"),
    ("baseline", "first"): ("tab:red", "-", "o"),
    ("dlt", "first"): ("tab:green", "-", "o"),
    ("floor", "read"): ("tab:gray", "--", "v"),
    ("floor", "copy"): ("tab:gray", ":", "D"),
    ("floor", "read+copy"): ("black", "-", "x"),
}


def _series(result: dict[str, Any]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """(contender, scenario) -> its rows with the corpus size, smallest size first."""
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for size in sorted(result["sizes"], key=lambda s: s["files"]):
        for row in size["rows"]:
            out.setdefault((row["contender"], row["scenario"]), []).append(
                {**row, "size": size["files"], "image_bytes": size["image_bytes"]})
    return out


def plot(result: dict[str, Any], out: Path) -> Path:
    series = _series(result)
    fig, (ax_speed, ax_rss) = plt.subplots(1, 2, figsize=(14, 5.8), constrained_layout=True)
    for key, rows in series.items():
        color, line, marker = STYLE.get(key, ("tab:purple", "-", "o"))
        label = f"{key[0]} ({key[1]})"
        xs = [r["size"] for r in rows]
        ax_speed.plot(xs, [r["files_per_s"] for r in rows], line, color=color, marker=marker, label=label)
        if not rows[0].get("derived"):
            ax_rss.plot(xs, [r["rss_mb"] for r in rows], line, color=color, marker=marker, label=label)
    pharm = series.get(("pharmload", "first"), [])
    if pharm:
        ax_rss.plot([r["size"] for r in pharm], [r["tree_rss_mb"] for r in pharm], "-", color="tab:cyan",
                    marker="o", alpha=0.8, label="pharmload (first), whole process tree (summed RSS)")
        ax_rss.plot([r["size"] for r in pharm], [r["server_rss_mb"] for r in pharm], "-.", color="tab:olive",
                    marker="*", label="PostgreSQL server, during pharmload (first)")
    sizes = sorted({r["size"]: r["image_bytes"] for rows in series.values() for r in rows}.items())
    ticks = [s for s, _ in sizes]
    labels = [f"{s:,}\n@{b / 1000:g} KB" for s, b in sizes]
    for ax, title, ylabel in ((ax_speed, "Throughput (median of runs)", "search files per second (log)"),
                              (ax_rss, "Peak memory (max of runs)", "peak RSS, MB (ru_maxrss unless noted)")):
        ax.set_xscale("log")
        ax.set_xticks(ticks, labels)
        ax.minorticks_off()
        if len(ticks) == 1:
            ax.set_xlim(ticks[0] / 2, ticks[0] * 2)
        ax.set_title(title)
        ax.set_xlabel("corpus size: search files @ screenshot size (log)")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="major", alpha=0.3)
    ax_speed.set_yscale("log")
    ax_rss.set_ylim(bottom=0)
    handles, names = ax_speed.get_legend_handles_labels()
    more_h, more_n = ax_rss.get_legend_handles_labels()
    for h, n in zip(more_h, more_n, strict=True):
        if n not in names:
            handles.append(h)
            names.append(n)
    fig.legend(handles, names, loc="outside lower center", ncol=4, fontsize=9, frameon=False)
    meta = result.get("meta", {})
    fig.suptitle(f"pharmload benchmark, {meta.get('date', '')}, {meta.get('profile', 'repeats')} corpus: "
                 f"{meta.get('cpus', '?')} CPUs, "
                 f"PostgreSQL {meta.get('server_version', '?')}, {meta.get('runs', '?')} runs per point")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.plot", description=__doc__.split("\n\n")[0])
    p.add_argument("result", type=Path, help="a JSON file written by benchmarks.harness")
    p.add_argument("--out", type=Path, help="PNG to write (default: next to the JSON)")
    args = p.parse_args(argv)
    result = json.loads(args.result.read_text(encoding="utf-8"))
    print(plot(result, args.out or args.result.with_suffix(".png")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
