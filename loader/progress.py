"""What a running load shows: a live line on a terminal, plain timestamped log lines elsewhere.

Updates come once per chunk (thousands of files), never per file, and the terminal line is
redrawn at most ten times a second, so following a load costs the hot loop nothing measurable.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

log = logging.getLogger("pharmload")


class Progress:
    def __init__(self, live: bool, stream: TextIO | None = None) -> None:
        self.live = live
        self.stream = stream or sys.stderr
        self.phase = ""
        self.total = 0
        self.done = 0
        self.started = time.monotonic()
        self._drawn = 0.0
        self._width = 0

    def begin(self, phase: str, total: int) -> None:
        self.phase, self.total, self.done = phase, total, 0
        self.started = time.monotonic()
        self._draw(force=True)

    def advance(self, n: int, extra: str = "") -> None:
        self.done += n
        self._draw(extra=extra)

    def _draw(self, force: bool = False, extra: str = "") -> None:
        if not self.live:
            return
        now = time.monotonic()
        if not force and now - self._drawn < 0.1 and self.done < self.total:
            return
        self._drawn = now
        elapsed = max(now - self.started, 1e-6)
        rate = self.done / elapsed
        eta = (self.total - self.done) / rate if rate > 0 else 0.0
        line = (f"{self.phase}: {self.done}/{self.total} files  {rate:,.0f} files/s  "
                f"ETA {eta:4.1f}s  {extra}").rstrip()
        pad = max(0, self._width - len(line))
        self._width = len(line)
        self.stream.write("\r" + line + " " * pad)
        self.stream.flush()

    def note(self, message: str, *args: object) -> None:
        """A phase milestone: ends the live line on a terminal, one log line everywhere else."""
        if self.live and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self._width = 0
        log.info(message, *args)
