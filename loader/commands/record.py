"""What drop and gc leave for their operators however they end: the time taken, the error (secrets
redacted), --report-json and --metrics-file."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import orjson

from loader.errors import LoadError, PharmloadError, redact
from loader.report import write_atomically
from loader.settings import Settings


class Outcome(Protocol):
    status: str
    error: str | None
    elapsed: float

    def as_dict(self) -> dict[str, Any]: ...


@contextmanager
def recorded(settings: Settings, out: Outcome, metrics: Callable[[Path], None]) -> Iterator[None]:
    """Run the block as the command: a PharmloadError marks `out` failed and propagates; either way
    the report and (unless a dry run) metrics(--metrics-file) are written at the end."""
    t0 = time.perf_counter()
    try:
        yield
    except PharmloadError as exc:
        out.status, out.error = "failed", redact(str(exc), settings.secrets)
        raise
    finally:
        out.elapsed = time.perf_counter() - t0
        try:
            if settings.report_json is not None:
                write_atomically(settings.report_json, orjson.dumps(out.as_dict(), option=orjson.OPT_INDENT_2) + b"\n")
            if settings.metrics_file is not None and not settings.dry_run:
                metrics(settings.metrics_file)
        except OSError as exc:
            raise LoadError(f"cannot write the report: {exc}") from exc
