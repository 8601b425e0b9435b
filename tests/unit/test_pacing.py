"""The Pacer: grows while requests come back fast and fine, backs off on refusals, stays in bounds.

Driven with a fake clock, so every round trip takes exactly what the test says.
"""

from __future__ import annotations

import threading
import time

import pytest

from loader.stores.pacing import BACKOFF, CAREFUL_STEP, FLOOR, START, Pacer


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def round_trip(pacer: Pacer, clock: Clock, took: float, ok: bool = True) -> None:
    """As many requests as the limit allows, all started together and done `took` later."""
    starts = [pacer.acquire() for _ in range(int(pacer.limit))]
    clock.now += took
    for started in starts:
        pacer.release(started, ok)


def test_it_starts_low_and_doubles_while_round_trips_stay_fast() -> None:
    clock = Clock()
    pacer = Pacer(64, clock=clock)
    assert pacer.limit == START
    round_trip(pacer, clock, 0.08)
    assert pacer.limit == 2 * START
    for _ in range(5):
        round_trip(pacer, clock, 0.08)
    assert pacer.limit == 64 and pacer.peak == 64  # the ceiling, never more


def test_it_stops_growing_when_the_server_queues() -> None:
    clock = Clock()
    pacer = Pacer(64, clock=clock)
    round_trip(pacer, clock, 0.01)
    reached = pacer.limit
    round_trip(pacer, clock, 0.08)  # eight times the fastest: more at a time would only wait longer
    assert pacer.limit == reached


def test_a_refusal_multiplies_the_limit_once_per_round_trip_and_ends_the_doubling() -> None:
    clock = Clock()
    pacer = Pacer(64, clock=clock)
    for _ in range(3):
        round_trip(pacer, clock, 0.02)
    before = pacer.limit
    round_trip(pacer, clock, 0.02, ok=False)  # a burst of 429s: one signal
    assert pacer.limit == pytest.approx(before * BACKOFF) and pacer.backoffs == 1
    after = pacer.limit
    round_trip(pacer, clock, 0.02)
    assert pacer.limit == after  # none in the round trip right after a refusal
    for _ in range(5):  # 0.1 s
        round_trip(pacer, clock, 0.02)
    assert pacer.limit == after + 1  # then one more per STEP, not per round trip, nor double
    while pacer.limit + 1 < before:
        round_trip(pacer, clock, 0.02)
    reached, started = pacer.limit, clock.now
    while pacer.limit == reached:
        round_trip(pacer, clock, 0.02)
    assert clock.now - started >= CAREFUL_STEP  # near where it was refused: one more per second


def test_below_one_it_spaces_requests_out_and_recovers() -> None:
    pacer = Pacer(8)

    def request(ok: bool) -> None:  # a round trip of 20 ms
        started = pacer.acquire()
        time.sleep(0.02)
        pacer.release(started, ok)

    request(ok=True)
    for _ in range(3):
        pacer.last_backoff = -1e9
        request(ok=False)
    assert pacer.limit == pytest.approx(4 * BACKOFF**3)
    pacer.limit = 0.06
    request(ok=False)
    assert pacer.limit == FLOOR  # never less than one request every 20 round trips
    pacer.limit = 0.5
    started = time.monotonic()
    for _ in range(3):
        request(ok=True)
    assert time.monotonic() - started >= 3 * 0.02 + 2 * 0.015  # and a gap of about a round trip between
    clock = Clock()
    pacer = Pacer(8, clock=clock)
    pacer.limit, pacer.slow_start, pacer.refused_at = 1.0, False, 1.0
    for _ in range(40):
        round_trip(pacer, clock, 0.05)
    assert pacer.limit > 2


def test_requests_beyond_the_limit_wait_for_a_place() -> None:
    pacer = Pacer(2, start=2)
    held = [pacer.acquire(), pacer.acquire()]
    got = threading.Event()

    def wait_for_place() -> None:
        pacer.acquire()
        got.set()

    waiter = threading.Thread(target=wait_for_place)
    waiter.start()
    assert not got.wait(0.2) and pacer.in_flight == 2
    pacer.release(held[0], ok=True)
    assert got.wait(5) and pacer.in_flight == 2
    waiter.join()


def test_slot_backs_off_only_on_what_says_slow_down() -> None:
    pacer = Pacer(16, start=10)
    with pytest.raises(KeyError), pacer.slot(lambda exc: isinstance(exc, TimeoutError)):
        raise KeyError("not the server's fault")
    assert pacer.limit == 10 and pacer.in_flight == 0
    with pytest.raises(TimeoutError), pacer.slot(lambda exc: isinstance(exc, TimeoutError)):
        raise TimeoutError
    assert pacer.limit == 7 and pacer.in_flight == 0
