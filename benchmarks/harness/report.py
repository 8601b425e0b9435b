"""The result as Markdown, and the raw JSON, Markdown and plot files of a run."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.harness.targets import target_line


def _fmt(value: float | None, digits: int = 2) -> str:
    if value is None or value != value:
        return "–"
    return f"{value:,.{digits}f}"


def _shape(size: dict[str, Any]) -> str:
    """The corpus's shape: what a correct load ends with."""
    pairs = f"{size['search_pairs']:,} pharmacy+state pairs, " if "search_pairs" in size else ""
    return (f"{size.get('profile', 'repeats')} profile: {size['files']:,} search files, "
            f"{size['expected_rows']:,} rows, {pairs}{size['expected_images']:,} distinct screenshots")


def markdown(result: dict[str, Any]) -> str:
    meta = result["meta"]
    lines = [
        f"## pharmload benchmark, {meta['date']}",
        "",
        f"{meta['cpus']} CPUs ({meta['machine']}), PostgreSQL {meta['server_version']} (embedded, "
        f"shared_buffers {meta['server_settings'].get('shared_buffers')}, fsync "
        f"{meta['server_settings'].get('fsync')}), Python {meta['python']}; {meta['runs']} timed runs after "
        f"{meta['warmup']} warm-up per contender, median (min–max); warm page cache; load average "
        f"{meta['loadavg_start']} at start, {meta.get('loadavg_end')} at end.",
        "",
    ]
    header = ("| contender | scenario | files | wall s, median (min–max) | files/s | CPU s | server CPU s | "
              "loader RSS MB | tree RSS / PSS MB | server RSS MB | × pharmload first | × floor |")
    for size in result["sizes"]:
        lines += [f"### {size['files']:,} files, ~{size['image_bytes']:,}-byte screenshots "
                  f"({_shape(size)})", "", header,
                  "|" + "---|" * 12]
        for r in size["rows"]:
            lines.append(
                f"| {r['contender']} | {r['scenario']} | {r['files']:,} | {_fmt(r['wall_median'])} "
                f"({_fmt(r['wall_min'])}–{_fmt(r['wall_max'])}) | {_fmt(r['files_per_s'], 0)} | "
                f"{_fmt(r['cpu_median'])} | {_fmt(r['server_cpu_median'])} | {_fmt(r['rss_mb'], 0)} | "
                f"{_fmt(r['tree_rss_mb'], 0)} / {_fmt(r.get('tree_pss_mb'), 0)} | "
                f"{_fmt(r['server_rss_mb'], 0)} | {_fmt(r['x_pharmload_first'])} | {_fmt(r['x_floor'])} |")
        phase_rows = [r for r in size["rows"] if r.get("phases_median")]
        if phase_rows:
            lines += ["", "pharmload phases (median s, from `--report-json`; in-process = the report's elapsed):", ""]
            for r in phase_rows:
                parts = ", ".join(f"{k} {v:.2f}" for k, v in r["phases_median"].items())
                startup = r["wall_median"] - r["in_process_median"]
                lines.append(f"- {r['scenario']}: in-process {r['in_process_median']:.2f} of {r['wall_median']:.2f} "
                             f"wall (start-up and exit {startup:.2f}); {parts}")
        for note in size.get("notes", []):
            lines.append(f"- {note}")
        lines += [target_line(c) for c in size.get("targets", [])]
        lines.append("")
    mem = result.get("memory_check")
    if mem:
        verdict = "PASS" if mem["pass"] else "FAIL"
        lines += [f"### Memory check: pharmload first load of {mem['files']:,} files (~{mem['image_bytes']:,} B "
                  f"screenshots): {verdict}", "",
                  f"loader peak RSS (ru_maxrss) {mem['rss_mb']:.0f} MB; whole process tree: PSS "
                  f"{mem['tree_pss_mb']:.0f} MB, RSS summed {mem['tree_rss_mb']:.0f} MB; server "
                  f"{mem['server_rss_mb']:.0f} MB. Target: ru_maxrss and tree PSS ≤ {mem['target_mb']:.0f} MB. "
                  f"Wall {mem['wall']:.1f}s, CPU {mem['cpu']:.1f}s.", ""]
    lines += [
        "Columns: wall = whole process, interpreter start to exit; files/s = search files in the tree / median "
        "wall; CPU = user+system of the contender and all its descendants; server CPU = user+system of all server "
        "processes meanwhile; loader RSS = ru_maxrss (largest "
        "single process); tree RSS / PSS = peak summed RSS (every 50 ms; shared pages counted in every process) "
        "/ PSS (every 250 ms; shared pages split) of the contender's processes; server RSS = peak summed RSS of "
        "all server processes (every 50 ms; shared buffers counted in every process); × pharmload "
        "first = median wall / pharmload's first load; × floor = median wall / (floor read + floor copy).",
    ]
    return "\n".join(lines) + "\n"


def write_results(result: dict[str, Any], results_dir: Path, plot: bool) -> list[Path]:
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    sizes = "_".join(f"{s['files']}x{s['image_bytes']}" for s in result["sizes"]) or "none"
    stem = results_dir / f"bench-{stamp}-{sizes}"
    paths = [stem.with_suffix(".json"), stem.with_suffix(".md")]
    paths[0].write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    paths[1].write_text(markdown(result), encoding="utf-8")
    if plot and result["sizes"]:
        from benchmarks.plot import plot as draw

        paths.append(draw(result, stem.with_suffix(".png")))
    return paths
