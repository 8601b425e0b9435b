"""How many storage requests to have in flight: found as the load goes, not fixed in advance.

A fixed number is wrong everywhere but where it was tuned: near the server, 10 requests at a time
keep it busy; 80 ms away, each request spends most of its time on the wire and 10 at a time pay that
latency per screenshot; behind a rate limit, too many at a time earn 429s. The Pacer starts low,
grows while requests come back about as fast as the fastest seen lately (within twice it plus 25 ms)
and without errors (doubling at first), and multiplies the limit by BACKOFF on a 429, a 5xx or a
dropped connection, at most once per round trip (a burst of refusals is one signal). After the first
refusal it grows by one at a time, at most every STEP seconds (a rate limit counts requests per
second, not per round trip: near the server, round trips of a few ms would otherwise overrun it many
times a second), and every CAREFUL_STEP seconds once near the limit it was refused at. It never goes
above the ceiling the user set (--max-concurrent-uploads). Below one it spaces the requests out (a
fast server behind a rate limit refuses even one request at a time: 5 ms round trips are 200
requests/s).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

START = 4
BACKOFF = 0.7
TOLERANCE = 2.0  # a round trip up to this many times the fastest recent one, plus SLACK, is not
SLACK = 0.025  # "the server queues" (SLACK: near the server, a round trip of 5 ms doubles by itself)
MIN_WINDOW = 200  # requests after which the fastest round trip is forgotten (the network may change)
STEP = 0.1
CAREFUL_STEP = 1.0
FLOOR = 0.05  # below 1: one request at a time, 1/limit round trips from one start to the next


class Pacer:
    """A concurrency limit that adapts; `slot()` holds one request's place."""

    def __init__(self, ceiling: int, start: int = START, clock: Callable[[], float] = time.monotonic) -> None:
        self.ceiling = max(1, ceiling)
        self.limit = float(min(start, self.ceiling))
        self.in_flight = 0
        self.slow_start = True
        self.fastest: float | None = None
        self.fastest_next: float | None = None
        self.seen = 0
        self.last_backoff = -1e9
        self.full_at = -1e9
        self.last_growth = self.last_start = -1e9
        self.refused_at = float(self.ceiling)
        self.peak = int(self.limit)
        self.backoffs = 0
        self._clock = clock
        self._cond = threading.Condition()

    def acquire(self) -> float:
        """Wait for a place (and, below one request at a time, for the gap); returns the start time."""
        with self._cond:
            while True:
                if self.in_flight >= max(1, int(self.limit)):
                    self._cond.wait()
                    continue
                gap = (self.fastest or 0.0) / self.limit if self.limit < 1 else 0.0  # from start to start
                left = self.last_start + gap - self._clock()
                if left <= 0:
                    break
                self._cond.wait(left)
            self.in_flight += 1
            now = self.last_start = self._clock()
            if self.in_flight >= int(self.limit):
                self.full_at = now
            return now

    def release(self, started: float, ok: bool) -> None:
        """A request is done: ok, or refused/failed in a way that says slow down (429, 5xx, dropped)."""
        now = self._clock()
        took = now - started
        with self._cond:
            busy = self.full_at >= started  # the limit was reached while this request ran: it held us back
            self.in_flight -= 1
            if ok:
                self._note(took)
                if busy and self.fastest is not None and took <= TOLERANCE * self.fastest + SLACK:
                    self._grow(now)
            elif now - self.last_backoff > (self.fastest or 0.0) * TOLERANCE:
                self.refused_at = self.limit
                self.limit = max(FLOOR, self.limit * BACKOFF)
                self.slow_start = False
                self.last_backoff = self.last_growth = now
                self.backoffs += 1
            self._cond.notify_all()

    def _grow(self, now: float) -> None:
        if self.slow_start:
            self.limit = min(self.ceiling, self.limit + 1.0)
        else:
            near = abs(self.limit + 1 - self.refused_at) <= max(1.0, 0.1 * self.refused_at)
            step = CAREFUL_STEP if near else max(STEP, TOLERANCE * (self.fastest or 0.0))
            if now - self.last_growth < step:
                return
            self.limit = min(self.ceiling, self.limit + 1.0 if self.limit >= 1 else min(1.0, self.limit / BACKOFF))
            self.last_growth = now
        self.peak = max(self.peak, int(self.limit))

    def _note(self, took: float) -> None:
        """Track the fastest round trip of the last MIN_WINDOW..2*MIN_WINDOW requests."""
        self.fastest = took if self.fastest is None else min(self.fastest, took)
        self.fastest_next = took if self.fastest_next is None else min(self.fastest_next, took)
        self.seen += 1
        if self.seen >= MIN_WINDOW:
            self.fastest, self.fastest_next, self.seen = self.fastest_next, None, 0

    @contextmanager
    def slot(self, slow_down: Callable[[BaseException], bool]) -> Iterator[None]:
        """Hold a place for one request; an exception for which slow_down is true backs off."""
        started = self.acquire()
        try:
            yield
        except BaseException as exc:
            self.release(started, ok=not slow_down(exc))
            raise
        self.release(started, ok=True)
