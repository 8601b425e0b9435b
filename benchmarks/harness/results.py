"""benchmarks/RESULTS.md: the latest run of each kind (profile and sizes), and a history of runs.

Raw outputs of every run (JSON, Markdown, plot) go to an ignored folder; this file is what the
repository keeps, updated only when asked (``--update-results``). Each kind of run has a section
between ``<!-- latest KIND -->`` and ``<!-- /latest -->`` that the next run of that kind replaces,
with a plot in ``benchmarks/results/KIND.png``; every run adds one row to the history table (between
``<!-- history -->`` and ``<!-- /history -->``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from benchmarks.harness.report import all_checks, markdown, size_title
from benchmarks.harness.targets import JUDGED_PROFILE

HISTORY_START, HISTORY_END = "<!-- history -->", "<!-- /history -->"
LATEST_END = "<!-- /latest -->"
HISTORY_HEADER = (
    "| date | measured at | profile | sizes (runs) | pharmload first load, median (dlt ÷ pharmload; pharmload ÷ "
    "floor copy); re-run | verdict |\n|---|---|---|---|---|---|"
)
TEMPLATE = f"""# Benchmark results

The latest run of each kind (corpus profile and sizes) and the history of runs, from
`python -m benchmarks.harness --update-results` (`make bench UPDATE_RESULTS=1`). How the figures are
measured and how to read them: [README.md](README.md).

## History

{HISTORY_START}
{HISTORY_HEADER}
{HISTORY_END}
"""


def kind(result: dict[str, Any]) -> str:
    """What a run measured: its profile and sizes (a memory check too), e.g. realistic-515x100000_20000x20000."""
    sizes = "_".join(f"{s['files']}x{s['image_bytes']}" for s in result["sizes"]) or "none"
    mem = result.get("memory_check")
    extra = f"_mem{mem['files']}x{mem['image_bytes']}" if mem else ""
    return f"{result['meta'].get('profile', 'repeats')}-{sizes}{extra}"


def _figures(size: dict[str, Any]) -> str:
    rows = {(r["contender"], r["scenario"]): r["wall_median"] for r in size["rows"]}
    first = rows.get(("pharmload", "first"))
    if first is None:
        return f"{size_title(size['files'], size['image_bytes'])}: –"
    ratios = []
    if rows.get(("dlt", "first")):
        ratios.append(f"dlt {rows[('dlt', 'first')] / first:.2f}")
    if rows.get(("floor", "copy")):
        ratios.append(f"copy {first / rows[('floor', 'copy')]:.2f}")
    text = f"{size_title(size['files'], size['image_bytes'])}: {first:.2f} s" + (
        f" ({'; '.join(ratios)})" if ratios else "")
    rerun = rows.get(("pharmload", "rerun"))
    return text + (f", re-run {rerun:.2f} s" if rerun is not None else "")


def _memory_figures(mem: dict[str, Any]) -> str:
    return (f"{size_title(mem['files'], mem['image_bytes'])} memory check: tree PSS {mem['tree_pss_mb']:.0f} MB, "
            f"largest process {mem['rss_mb']:.0f} MB, {mem['wall']:.0f} s")


def _verdict(result: dict[str, Any]) -> str:
    meta = result["meta"]
    checks = all_checks(result)
    if not checks:
        return "–"
    missed = [c for c in checks if c["met"] is False]
    unjudged = [c for c in checks if c["met"] is None]
    if missed:
        names = ", ".join(c.get("target") or c["scenario"] for c in missed)
        word = f"MISSED {len(missed)} of {len(checks)}: {names}"
    else:
        word = f"met ({len(checks) - len(unjudged)} of {len(checks)})"
    if "profile" not in meta:
        return f"{word}, old targets"
    if meta["profile"] != JUDGED_PROFILE:
        return f"not judged ({meta['profile']}): {word}"
    return word


def history_row(result: dict[str, Any], note: str = "") -> str:
    """One run as a row of the history table."""
    meta = result["meta"]
    profile = f"{meta.get('profile', 'repeats')} (corpus v{meta.get('corpus_version', 1)})"
    sizes = ", ".join(size_title(s["files"], s["image_bytes"]) for s in result["sizes"])
    figures = [_figures(s) for s in result["sizes"] if any(r["contender"] == "pharmload" for r in s["rows"])]
    if result.get("memory_check"):
        figures.append(_memory_figures(result["memory_check"]))
        sizes += f"; memory check {result['memory_check']['files']:,}"
    commit = meta.get("loader_commit") or str(meta.get("git", "?")).replace("+uncommitted loader/sql changes", "+")
    return (f"| {meta['date']} | {commit} | {profile} | {sizes} ({meta['runs']}) | {'<br>'.join(figures) or '–'} "
            f"| {_verdict(result)}{note} |")


def latest_section(result: dict[str, Any], plot: Path | None) -> str:
    name = kind(result)
    image = f"\n![{name}](results/{plot.name})\n" if plot else ""
    body = markdown(result, level=3, legend=False).split("\n", 1)[1].lstrip()  # without its title
    sizes = ", ".join(size_title(s["files"], s["image_bytes"]) for s in result["sizes"])
    mem = result.get("memory_check")
    if mem:
        sizes += f", memory check {size_title(mem['files'], mem['image_bytes'])}"
    title = f"{result['meta'].get('profile', 'repeats')} profile, {sizes} ({result['meta']['date']})"
    return f"<!-- latest {name} -->\n## Latest: {title}\n{image}\n{body}{LATEST_END}\n"


def update(path: Path, result: dict[str, Any], plot: Path | None) -> None:
    """Replace the run's kind's latest section (or add it before the history) and add its history row."""
    text = path.read_text(encoding="utf-8") if path.exists() else TEMPLATE
    section = latest_section(result, plot)
    pattern = re.compile(rf"<!-- latest {re.escape(kind(result))} -->\n.*?{re.escape(LATEST_END)}\n", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text, count=1)
    else:  # before the first section of a kind that sorts after it (realistic before repeats), or the history
        later = [m.start() for m in re.finditer(r"<!-- latest (\S+) -->", text) if m.group(1) > kind(result)]
        at = min(later, default=text.index("## History"))
        text = text[:at] + section + "\n" + text[at:]
    at = text.index(HISTORY_END)
    text = text[:at] + history_row(result) + "\n" + text[at:]
    path.write_text(text, encoding="utf-8")
