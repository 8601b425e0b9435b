"""The result as Markdown, and the raw JSON, Markdown and plot files of a run."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.harness.targets import JUDGED_PROFILE, verdict_rows


def _fmt(value: float | None, digits: int = 2) -> str:
    if value is None or value != value:
        return "–"
    return f"{value:,.{digits}f}"


def shape(size: dict[str, Any]) -> str:
    """The corpus's shape: what a correct load ends with."""
    pairs = f"{size['search_pairs']:,} pharmacy+state pairs, " if "search_pairs" in size else ""
    return (f"{size.get('profile', 'repeats')} profile: {size['files']:,} search files, "
            f"{size['expected_rows']:,} rows, {pairs}{size['expected_images']:,} distinct screenshots")


def size_title(files: int, image_bytes: int) -> str:
    return f"{files:,} files @{image_bytes / 1000:g} KB"


HEADER = ("| contender | scenario | files | wall s, median (min–max) | files/s | CPU s: loader | CPU s: server | "
          "cores busy %: run / machine | loader RSS MB | tree RSS / PSS MB | server RSS MB | × pharmload first "
          "| × floor |")


def _row(r: dict[str, Any]) -> str:
    return (f"| {r['contender']} | {r['scenario']} | {r['files']:,} | {_fmt(r['wall_median'])} "
            f"({_fmt(r['wall_min'])}–{_fmt(r['wall_max'])}) | {_fmt(r['files_per_s'], 0)} | "
            f"{_fmt(r['cpu_median'])} | {_fmt(r['server_cpu_median'])} | "
            f"{_fmt(r.get('run_busy_pct_median'), 0)} / {_fmt(r.get('machine_busy_pct_median'), 0)} | "
            f"{_fmt(r['rss_mb'], 0)} | {_fmt(r['tree_rss_mb'], 0)} / {_fmt(r.get('tree_pss_mb'), 0)} | "
            f"{_fmt(r['server_rss_mb'], 0)} | {_fmt(r['x_pharmload_first'])} | {_fmt(r['x_floor'])} |")


def _size_section(size: dict[str, Any], h: str) -> list[str]:
    lines = [f"{h} {size_title(size['files'], size['image_bytes'])} ({shape(size)})", "", HEADER,
             "|" + "---|" * 13, *(_row(r) for r in size["rows"])]
    phase_rows = [r for r in size["rows"] if r.get("phases_median")]
    if phase_rows:
        lines += ["", "pharmload phases (median s, from `--report-json`; in-process = the report's elapsed):", ""]
        for r in phase_rows:
            parts = ", ".join(f"{k} {v:.2f}" for k, v in r["phases_median"].items())
            startup = r["wall_median"] - r["in_process_median"]
            lines.append(f"- {r['scenario']}: in-process {r['in_process_median']:.2f} of {r['wall_median']:.2f} "
                         f"wall (start-up and exit {startup:.2f}); {parts}")
    lines += [f"- {note}" for note in size.get("notes", [])]
    return [*lines, ""]


def _memory_section(mem: dict[str, Any], h: str) -> list[str]:
    busy = f", cores busy {mem['busy_pct']:.0f} %" if mem.get("busy_pct") is not None else ""
    server = f", server CPU {mem['server_cpu']:.1f}s" if mem.get("server_cpu") is not None else ""
    return [f"{h} Memory check: pharmload first load of {size_title(mem['files'], mem['image_bytes'])}", "",
            f"loader peak RSS (ru_maxrss) {mem['rss_mb']:.0f} MB; whole process tree: PSS "
            f"{mem['tree_pss_mb']:.0f} MB, RSS summed {mem['tree_rss_mb']:.0f} MB; server "
            f"{mem['server_rss_mb']:.0f} MB. Wall {mem['wall']:.1f}s, CPU {mem['cpu']:.1f}s{server}{busy}."
            + _disk_note(mem), ""]


def _disk_note(mem: dict[str, Any]) -> str:
    """Whether the load waited on the disk: its tree read beforehand, what the kernel read and wrote."""
    vm = mem.get("vm") or {}
    if "tree_warm_s" not in mem or "pgpgin" not in vm:
        return ""
    return (f" Its tree was read beforehand ({mem['tree_warm_s']:.0f}s); during the load the machine read "
            f"{vm['pgpgin'] / 1024 ** 2:.1f} GB from disk and wrote {vm.get('pgpgout', 0) / 1024 ** 2:.1f} GB, "
            f"with {vm.get('workingset_refault_file', 0):,} page-cache refaults.")


def all_checks(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target judged in this run, the memory check's last."""
    checks = [c for size in result["sizes"] for c in size.get("targets", [])]
    mem = result.get("memory_check") or {}
    if "verdict" in mem:
        checks.append(mem["verdict"])
    elif "pass" in mem:  # a result from before the verdicts
        checks.append({"scenario": "memory", "met": mem["pass"]})
    return checks


def targets_section(result: dict[str, Any], h: str) -> list[str]:
    checks = [c for c in all_checks(result) if "criteria" in c]  # results from before the verdicts have none
    if not checks:
        return []
    profile = result["meta"].get("profile", "repeats")
    judged = profile == JUDGED_PROFILE
    note = ("judged on the realistic profile" if judged else
            f"shown for information: the targets are judged on the {JUDGED_PROFILE} profile, this is {profile}")
    return [f"{h} Targets (issue 16; {note})", "", *verdict_rows(checks, judged), ""]


COLUMNS = (
    "Columns: wall = whole process, interpreter start to exit; files/s = search files in the tree / median wall; "
    "CPU s: loader = user+system of the contender and all its descendants (workers, db process); CPU s: server = "
    "user+system of all PostgreSQL processes meanwhile; cores busy %: run = (loader + server CPU) / (wall × "
    "cores), machine = the share of all cores busy from launch to exit (/proc/stat: also the harness's sampler "
    "and anything else running); loader RSS = ru_maxrss (largest single process); tree RSS / PSS = peak summed "
    "RSS (every 50 ms; shared pages counted in every process) / PSS (every 250 ms; shared pages split) of the "
    "contender's processes; server RSS = peak summed RSS of all server processes (every 50 ms; shared buffers "
    "counted in every process); × pharmload first = median wall / pharmload's first load; × floor = median "
    "wall / (floor read + floor copy)."
)


def markdown(result: dict[str, Any], level: int = 2, legend: bool = True) -> str:
    """The run as Markdown; ``level``: the heading level of its title (sections one below); ``legend``:
    end with what each column means."""
    meta = result["meta"]
    h = "#" * (level + 1)
    commit = meta.get("loader_commit")
    measured = f"loader/sql at {commit} (checkout {meta.get('git')})" if commit else f"checkout {meta.get('git')}"
    lines = [
        f"{'#' * level} pharmload benchmark, {meta['date']}: {meta.get('profile', 'repeats')} profile",
        "",
        f"{meta['cpus']} CPUs ({meta['machine']}), PostgreSQL {meta['server_version']} (embedded, "
        f"shared_buffers {meta['server_settings'].get('shared_buffers')}, fsync "
        f"{meta['server_settings'].get('fsync')}), Python {meta['python']}; {measured}; {meta['runs']} timed runs "
        f"after {meta['warmup']} warm-up per contender, median (min–max); warm page cache; load average "
        f"{meta['loadavg_start']} at start, {meta.get('loadavg_end')} at end.{_fs_note(meta)}",
        "",
    ]
    for size in result["sizes"]:
        lines += _size_section(size, h)
    if result.get("memory_check"):
        lines += _memory_section(result["memory_check"], h)
    lines += targets_section(result, h)
    if legend:
        lines.append(COLUMNS)
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


def _fs_note(meta: dict[str, Any]) -> str:
    """The file system's state (harness/fs.py): what creating a file cost, and any wait for it."""
    if "fs_create_us_start" not in meta:
        return ""
    waited = meta.get("fs_settle_waited", 0)
    return (f" Creating an empty file: {meta['fs_create_us_start']} µs at start, {meta.get('fs_create_us_end', '–')} "
            f"µs at end" + (f" (after waiting {waited} s for the last clean-up to age)" if waited else "") + ".")
