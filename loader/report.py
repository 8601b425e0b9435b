"""What a run did: the summary on stderr, the same as JSON, and the rejects file.

The summary keeps the shape of the old importer's (phases with durations, files, images, failed
items), because the people on call read it; the JSON form carries the same numbers for scripts.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, BinaryIO

import orjson

MAX_LISTED = 10
_LOCK = threading.Lock()  # the store and copy threads report too


@dataclass(frozen=True)
class MergeCounts:
    """What the merge did (merge.py); plain data, so it crosses to the loader from the db process."""

    inserted: int
    updated: int
    unchanged: int
    images_new: int
    images_distinct: int


@dataclass
class Report:
    tag: str = ""
    backend: str = ""
    dataset_id: int | None = None
    dry_run: bool = False
    status: str = "running"
    error: str | None = None
    phases: dict[str, float] = field(default_factory=dict)
    files_found: int = 0
    files_loaded: int = 0
    files_rejected: int = 0
    files_skipped: int = 0
    rows_parsed: int = 0    # rows the files gave, one per license (or per no-results search)
    rows_staged: int = 0    # rows staged: one per key within each chunk
    rows_distinct: int = 0  # rows the merge reads: one per key of the whole load
    rows_inserted: int = 0
    rows_updated: int = 0
    rows_unchanged: int = 0
    images_referenced: int = 0
    images_stored: int = 0
    images_new_rows: int = 0
    images_failed: int = 0
    rejects: list[tuple[str, str, str]] = field(default_factory=list)
    rejects_by_reason: dict[str, int] = field(default_factory=dict)
    warnings_by_kind: dict[str, int] = field(default_factory=dict)
    warning_examples: list[dict[str, str]] = field(default_factory=list)
    verify: dict[str, Any] = field(default_factory=dict)
    run_id: int | None = None
    attempts: int = 0
    note: str | None = None
    started_at: float = field(default_factory=time.time)
    elapsed: float = 0.0

    def reset(self, attempt: int) -> None:
        """Start the counts afresh for another attempt; phase times keep adding up."""
        fresh = Report(tag=self.tag, backend=self.backend, dry_run=self.dry_run, phases=self.phases,
                       started_at=self.started_at)
        self.__dict__.update(fresh.__dict__)
        self.attempts = attempt

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time a phase; phases that run more than once (per chunk) add up."""
        start = time.perf_counter()
        try:
            yield
        finally:
            with _LOCK:
                self.phases[name] = self.phases.get(name, 0.0) + time.perf_counter() - start

    def add_rejects(self, rejects: list[tuple[str, str, str]]) -> None:
        """Rejected files as (path relative to the states folder, reason code, detail)."""
        with _LOCK:
            self.rejects.extend(rejects)
            counts = Counter(self.rejects_by_reason)
            counts.update(code for _, code, _ in rejects)
            self.rejects_by_reason = dict(sorted(counts.items()))
            self.files_rejected = sum(counts.values())

    def add_warnings(self, warnings: list[tuple[str, str, str]]) -> None:
        with _LOCK:
            counts = Counter(self.warnings_by_kind)
            counts.update(kind for _, kind, _ in warnings)
            self.warnings_by_kind = dict(sorted(counts.items()))
            for rel, kind, detail in warnings[: max(0, MAX_LISTED - len(self.warning_examples))]:
                self.warning_examples.append({"file": rel, "kind": kind, "detail": detail})

    def count(self, field_name: str, n: int) -> None:
        """Add to a counter from any thread."""
        with _LOCK:
            setattr(self, field_name, getattr(self, field_name) + n)

    def counts(self) -> dict[str, int]:
        """The numbers load_runs keeps."""
        return {"files_seen": self.files_found, "files_loaded": self.files_loaded,
                "files_skipped": self.files_skipped, "files_rejected": self.files_rejected,
                "rows_inserted": self.rows_inserted, "rows_updated": self.rows_updated,
                "rows_unchanged": self.rows_unchanged, "images_stored": self.images_stored}

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready values. Shallow, for it is only ever serialized: asdict() deep-copied
        every reject tuple, value by value, only for the list to be cut to MAX_LISTED (~4 ms at 400)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["rejects"] = [{"file": f, "reason": r, "detail": d} for f, r, d in self.rejects[:MAX_LISTED]]
        data["phases"] = {k: round(v, 4) for k, v in self.phases.items()}
        data["elapsed"] = round(self.elapsed, 4)
        return data

    def summary(self) -> dict[str, Any]:
        """The report as load_runs keeps it: without the listed rejects and warnings."""
        data = self.as_dict()
        data.pop("warning_examples", None)
        data.pop("rejects", None)
        return data

    def render(self) -> str:
        """The end-of-run summary, as the old importer printed it."""
        bar = "=" * 72
        mark = {"ok": "OK", "failed": "FAILED", "dry-run": "DRY RUN"}.get(self.status, self.status.upper())
        lines = [
            bar,
            f"pharmload {mark}: tag {self.tag!r} (dataset {self.dataset_id}) backend {self.backend}",
            bar,
            f"Elapsed: {self.elapsed:.2f}s",
            f"Files: {self.files_found} found, {self.files_loaded} loaded, "
            f"{self.files_rejected} rejected, {self.files_skipped} skipped (unchanged)",
            f"Images: {self.images_referenced} distinct, {self.images_stored} newly stored, "
            f"{self.images_new_rows} new image rows"
            + (f", {self.images_failed} NOT stored" if self.images_failed else ""),
            f"Rows: {self.rows_inserted} inserted, {self.rows_updated} updated, "
            f"{self.rows_unchanged} unchanged (one per key: {self.rows_distinct} of {self.rows_parsed} parsed)",
            "Phases:",
            *(f"  {name:<10} {secs:7.3f}s" for name, secs in self.phases.items()),
        ]
        if self.rejects_by_reason:
            lines.append("Rejected files by reason: " + ", ".join(
                f"{k} {v}" for k, v in self.rejects_by_reason.items()))
        if self.warnings_by_kind:
            lines.append("Warnings by kind: " + ", ".join(f"{k} {v}" for k, v in self.warnings_by_kind.items()))
            lines.extend(f"  {w['file']}: {w['detail']}" for w in self.warning_examples)
        if self.verify:
            lines.append(f"Verify: {self.verify.get('result')} ({self.verify.get('checked', 0)} rows, "
                         f"{self.verify.get('images_checked', 0)} screenshots checked, "
                         f"{self.verify.get('mismatch_count', 0)} mismatches)")
        if self.attempts > 1:
            lines.append(f"Attempts: {self.attempts} (transient database errors were retried)")
        if self.note:
            lines.append(f"Note: {self.note}")
        if self.error:
            lines.append(f"Error: {self.error}")
        lines.append(bar)
        return "\n".join(lines)


def write_atomically(path: Path, data: bytes | Callable[[BinaryIO], None]) -> None:
    """Temporary file, flush, fsync, rename: a reader never sees half a file. `data` is the bytes,
    or a function that writes them to the file (a big file need not be in memory twice)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, report: Report) -> None:
    write_atomically(path, orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2) + b"\n")


def write_rejects(path: Path, rejects: list[tuple[str, str, str]]) -> None:
    """JSON Lines, one object per rejected file, as FORMAT.md specifies."""
    body = b"".join(orjson.dumps({"file": f, "reason": r, "detail": d}) + b"\n" for f, r, d in rejects)
    write_atomically(path, body)
