"""--metrics-file: the last run, per tag, in Prometheus text format for node_exporter's textfile collector.

One file can serve several tags (the cron job loads one tag per day folder): the lines of other
tags are kept, this tag's are replaced. The last drop and the last gc have lines of their own
(label command), and a drop removes the dropped tag's load lines, so no alert fires for a tag that
is gone. The file is replaced atomically, so the collector never
reads half of it, and the last success time survives a failed run, so an alert can fire on a load
that has not succeeded for too long. `write_outputs` writes it with the rejects and report files,
after every load, whichever way it ran (pipeline.py or unchanged.py).
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

from loader import report
from loader.errors import LoadError
from loader.report import Report, write_atomically

if TYPE_CHECKING:
    from loader.settings import Settings

HELP = {
    "pharmload_last_run_start_timestamp_seconds": "Start of the last load of the tag (Unix time).",
    "pharmload_last_run_end_timestamp_seconds": "End of the last load of the tag (Unix time).",
    "pharmload_last_run_success": "1 if the last load of the tag committed, else 0.",
    "pharmload_last_success_timestamp_seconds": "End of the last load of the tag that committed (Unix time).",
    "pharmload_last_run_duration_seconds": "Wall time of the last load of the tag.",
    "pharmload_files": "Search files of the last load by outcome.",
    "pharmload_rows": "search_results rows of the last load by change.",
    "pharmload_images_stored": "Screenshots newly put into the store by the last load.",
    "pharmload_phase_duration_seconds": "Seconds spent per phase in the last load.",
    "pharmload_cleanup_end_timestamp_seconds": "End of the last drop or gc (Unix time).",
    "pharmload_cleanup_success": "1 if the last drop or gc finished without an error, else 0.",
    "pharmload_cleanup_removed_rows": "Rows the last drop or gc removed, by table.",
    "pharmload_cleanup_removed_objects": "Image store objects the last gc removed.",
    "pharmload_cleanup_removed_bytes": "Bytes of the image store objects the last gc removed.",
}
_LINE = re.compile(r'^(\w+)\{(.*)\} (\S+)$')


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _samples(rep: Report, success: bool, end: float, last_success: float | None) -> list[tuple[str, str, float]]:
    tag = f'tag="{_label(rep.tag)}"'
    out = [
        ("pharmload_last_run_start_timestamp_seconds", tag, rep.started_at),
        ("pharmload_last_run_end_timestamp_seconds", tag, end),
        ("pharmload_last_run_success", tag, 1.0 if success else 0.0),
        ("pharmload_last_run_duration_seconds", tag, rep.elapsed),
        ("pharmload_images_stored", tag, float(rep.images_stored)),
    ]
    if success:
        last_success = end
    if last_success is not None:
        out.append(("pharmload_last_success_timestamp_seconds", tag, last_success))
    out += [("pharmload_files", f'{tag},outcome="{k}"', float(v)) for k, v in (
        ("seen", rep.files_found), ("loaded", rep.files_loaded), ("skipped", rep.files_skipped),
        ("rejected", rep.files_rejected))]
    out += [("pharmload_rows", f'{tag},change="{k}"', float(v)) for k, v in (
        ("inserted", rep.rows_inserted), ("updated", rep.rows_updated), ("unchanged", rep.rows_unchanged))]
    out += [("pharmload_phase_duration_seconds", f'{tag},phase="{_label(p)}"', s) for p, s in rep.phases.items()]
    return out


def _read(path: Path) -> list[tuple[str, str, str]]:
    """The samples in the file, as (name, labels, value) text."""
    if not path.exists():
        return []
    found = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        m = _LINE.match(line)
        if m:
            found.append((m[1], m[2], m[3]))
    return found


def _write(path: Path, samples: list[tuple[str, str, str]]) -> None:
    """Replace the file with these samples, grouped by metric under their HELP and TYPE lines."""
    lines: list[str] = []
    for name, text in HELP.items():
        rows = [s for s in samples if s[0] == name]
        if rows:
            lines += [f"# HELP {name} {text}", f"# TYPE {name} gauge"]
            lines += [f"{n}{{{lab}}} {v}" for n, lab, v in sorted(rows, key=lambda s: s[1])]
    write_atomically(path, ("\n".join(lines) + "\n").encode())


def _of(labels: str, first: str) -> bool:
    """Whether a sample's labels start with this label (tag="x" or command="gc")."""
    return labels == first or labels.startswith(first + ",")


def write_metrics(path: Path, rep: Report, success: bool, end: float) -> None:
    """Replace this tag's samples in the metrics file, keeping every other tag's."""
    mine = f'tag="{_label(rep.tag)}"'
    kept: list[tuple[str, str, str]] = []
    last_success: float | None = None
    for name, labels, value in _read(path):
        if not _of(labels, mine):
            kept.append((name, labels, value))
        elif name == "pharmload_last_success_timestamp_seconds":
            last_success = float(value)
    fresh = [(n, lab, repr(v)) for n, lab, v in _samples(rep, success, end, last_success)]
    _write(path, kept + fresh)


def write_cleanup_metrics(path: Path, command: str, success: bool, end: float, rows: dict[str, int],
                          objects: int | None = None, removed_bytes: int | None = None,
                          dropped_tag: str | None = None) -> None:
    """Replace the samples of the last drop or gc (rows removed per table; gc: objects and bytes);
    a drop also removes the dropped tag's load samples."""
    mine = f'command="{_label(command)}"'
    gone = f'tag="{_label(dropped_tag)}"' if dropped_tag is not None else None
    kept = [s for s in _read(path) if not _of(s[1], mine) and not (gone and _of(s[1], gone))]
    fresh = [("pharmload_cleanup_end_timestamp_seconds", mine, end),
             ("pharmload_cleanup_success", mine, 1.0 if success else 0.0)]
    fresh += [("pharmload_cleanup_removed_rows", f'{mine},table="{_label(t)}"', float(n)) for t, n in rows.items()]
    if objects is not None:
        fresh.append(("pharmload_cleanup_removed_objects", mine, float(objects)))
    if removed_bytes is not None:
        fresh.append(("pharmload_cleanup_removed_bytes", mine, float(removed_bytes)))
    _write(path, kept + [(n, lab, repr(v)) for n, lab, v in fresh])


def write_outputs(settings: Settings, rep: Report) -> None:
    """What a run leaves for its operators, failed or not: the metrics file, the rejects file and
    the JSON report, each where the settings ask for one."""
    try:
        if settings.metrics_file is not None and not settings.dry_run:
            write_metrics(settings.metrics_file, rep, success=rep.status == "ok", end=time.time())
        if settings.rejects is not None:
            report.write_rejects(settings.rejects, rep.rejects)
        if settings.report_json is not None:
            report.write_json(settings.report_json, rep)
    except OSError as exc:
        raise LoadError(f"cannot write the report: {exc}") from exc
