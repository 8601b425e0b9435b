"""The targets of issue 16, judged against the contenders measured in the same run.

Absolute seconds drift from machine to machine and from hour to hour on a shared one, so a speed
target is a ratio to a peer measured side by side (dlt, or the floor's COPY-plus-merge), except the
unchanged re-run, which has no peer. The targets are set on the realistic corpus profile; on the
repeats profile the same checks are shown for information only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

JUDGED_PROFILE = "realistic"


@dataclass(frozen=True)
class Target:
    """pharmload's median for one scenario at one corpus size: each limit given must hold."""

    files: int
    image_bytes: int
    scenario: str
    dlt_ratio: float | None = None  # dlt's median / pharmload's at least this
    floor_copy_ratio: float | None = None  # pharmload's median / the floor's copy part at most this
    seconds: float | None = None  # pharmload's median at most this

    @property
    def label(self) -> str:
        what = {"first": "first load", "rerun": "unchanged re-run", "incremental": "one more day"}[self.scenario]
        limits = []
        if self.floor_copy_ratio is not None:
            limits.append(f"≤ {self.floor_copy_ratio:g} × floor copy")
        if self.dlt_ratio is not None:
            limits.append(f"≤ dlt / {self.dlt_ratio:g}")
        if self.seconds is not None:
            limits.append(f"≤ {self.seconds:g} s")
        return f"{self.files:,} files @{self.image_bytes / 1000:g} KB, {what} {' and '.join(limits)}"


TARGETS = (
    Target(515, 100_000, "first", dlt_ratio=3.3),
    Target(20_000, 20_000, "first", dlt_ratio=4.5),
    Target(20_000, 20_000, "rerun", seconds=0.5),
    Target(100_000, 2_000, "first", floor_copy_ratio=1.4, dlt_ratio=4.0),
)


@dataclass(frozen=True)
class MemoryTarget:
    """The big tree: the loader's whole process tree (workers and db process too) stays under
    ``mb``, and its time is at most ``time_ratio`` × the first load of ``reference_files`` files
    measured in the same run (time linear in the tree's size, give or take)."""

    files: int = 1_000_000
    mb: float = 1024.0
    time_ratio: float = 12.0
    reference_files: int = 100_000


MEMORY_TARGET = MemoryTarget()


def _overall(criteria: list[dict[str, Any]]) -> bool | None:
    verdicts = [c["met"] for c in criteria]
    return False if False in verdicts else None if None in verdicts else True


def _criterion(text: str, met: bool | None) -> dict[str, Any]:
    return {"text": text, "met": met}


def target_checks(files: int, image_bytes: int, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each target of this size, against the medians of this run (a target whose peer did not run
    is not judged: ``met`` None)."""
    medians = {(r["contender"], r["scenario"]): r["wall_median"] for r in rows}
    checks = []
    for t in TARGETS:
        ours = medians.get(("pharmload", t.scenario))
        if (t.files, t.image_bytes) != (files, image_bytes) or ours is None:
            continue
        criteria = []
        if t.floor_copy_ratio is not None:
            copy = medians.get(("floor", "copy"))
            criteria.append(_criterion("no floor copy in this run", None) if copy is None else _criterion(
                f"floor copy {copy:.2f} s: × {ours / copy:.2f} (≤ {t.floor_copy_ratio:g})",
                ours / copy <= t.floor_copy_ratio))
        if t.dlt_ratio is not None:
            dlt = medians.get(("dlt", "first"))
            criteria.append(_criterion("no dlt in this run", None) if dlt is None else _criterion(
                f"dlt {dlt:.2f} s: dlt / pharmload {dlt / ours:.2f} (≥ {t.dlt_ratio:g})", dlt / ours >= t.dlt_ratio))
        if t.seconds is not None:
            criteria.append(_criterion(f"≤ {t.seconds:g} s", ours <= t.seconds))
        checks.append({"files": files, "image_bytes": image_bytes, "scenario": t.scenario, "target": t.label,
                       "median_s": ours, "criteria": criteria, "met": _overall(criteria)})
    return checks


def memory_verdict(mem: dict[str, Any], reference_s: float | None) -> dict[str, Any]:
    """The memory check against MEMORY_TARGET; ``reference_s``: the first load of
    MEMORY_TARGET.reference_files files in this run (median), if it ran."""
    t = MEMORY_TARGET
    limit = float(mem.get("target_mb", t.mb))
    peak = max(mem["rss_mb"], mem["tree_pss_mb"])
    criteria = [_criterion(f"whole tree PSS {mem['tree_pss_mb']:.0f} MB, largest process {mem['rss_mb']:.0f} MB "
                           f"(≤ {limit:.0f})", peak <= limit)]
    if reference_s is None:
        criteria.append(_criterion(f"no {t.reference_files:,}-file first load in this run", None))
    else:
        ratio = mem["wall"] / reference_s
        criteria.append(_criterion(f"{mem['wall']:.1f} s = {ratio:.1f} × {reference_s:.2f} s (≤ {t.time_ratio:g})",
                                   ratio <= t.time_ratio))
    label = (f"{mem['files']:,} files @{mem['image_bytes'] / 1000:g} KB, first load: peak memory ≤ {limit:.0f} MB, "
             f"time ≤ {t.time_ratio:g} × the {t.reference_files:,}-file time")
    return {"files": mem["files"], "image_bytes": mem["image_bytes"], "scenario": "memory", "target": label,
            "median_s": mem["wall"], "criteria": criteria, "met": _overall(criteria)}


def verdict_word(met: bool | None, judged: bool) -> str:
    word = "not judged" if met is None else "met" if met else "MISSED"
    return word if judged or met is None else f"({word.lower()}: not judged on this profile)"


def verdict_rows(checks: list[dict[str, Any]], judged: bool) -> list[str]:
    """The targets as a Markdown table: target, what this run measured, verdict."""
    lines = ["| target | measured in this run (median) | verdict |", "|---|---|---|"]
    for c in checks:
        measured = f"{c['median_s']:.2f} s; " + "; ".join(
            cr["text"] + ("" if cr["met"] is None else " met" if cr["met"] else " MISSED") for cr in c["criteria"])
        lines.append(f"| {c['target']} | {measured} | {verdict_word(c['met'], judged)} |")
    return lines
