"""gc racing loads: a screenshot a running load found in the store (and so did not store again) must
still be there, with its row, when the load has committed, wherever the gc falls in the load.

The garbage gc finds is made dangerous on purpose: the screenshots of a dropped tag (unreferenced
rows, objects in the store) are also in the tree being loaded, and objects without a row (what a
crashed load leaves) are planted for some of the new ones; gc runs with --grace 0, so only the
locking protects the load.
"""

from __future__ import annotations

import random
from itertools import count

import pytest

from loader.db.merge import LoadTransaction
from loader.run import pipeline
from loader.settings import Settings
from tests.scrape import Scrape
from tests.support.lifecycle import (
    collect,
    dangling,
    digest,
    garbage_and_tree,
    gc_while_storing,
    keys,
    local_objects,
    race,
    shot,
)

ROUNDS = 32


def test_a_gc_started_while_a_load_stores_waits_for_its_commit(monkeypatch: pytest.MonkeyPatch, settings: Settings,
                                                               scrape: Scrape, dsn: str) -> None:
    load = garbage_and_tree(settings, scrape, 12, 0)
    seen = gc_while_storing(monkeypatch, settings.replace(grace_seconds=0))
    pipeline.run(load)
    assert seen["waited"], "the gc ran while the load was between storing and committing"
    seen["thread"].join(30)
    assert dangling(dsn, local_objects(settings.image_dir)) == []
    assert set(local_objects(settings.image_dir)) == keys(range(6, 18))  # 0-5: garbage nobody uses now
    assert (seen["outcome"].rows_removed, seen["outcome"].objects_removed) == (6, 6)


def test_without_the_loads_lock_the_same_race_loses_screenshots(monkeypatch: pytest.MonkeyPatch,
                                                                 settings: Settings, scrape: Scrape,
                                                                 dsn: str) -> None:
    """The control: the test above fails when loads do not take gc's lock."""
    monkeypatch.setattr(LoadTransaction, "_share_gc_lock", lambda self, wait: None)
    load = garbage_and_tree(settings, scrape, 12, 0)
    # Nothing makes this gc wait, so give it all the time a busy machine may need to finish.
    seen = gc_while_storing(monkeypatch, settings.replace(grace_seconds=0), patience=60.0)
    pipeline.run(load)
    assert not seen["waited"]  # the gc ran to its end inside the load
    # The shared screenshots lost their rows and objects (the load found both in place), the new
    # ones their objects (gc took them for a crashed load's).
    lost = dangling(dsn, local_objects(settings.image_dir))
    assert sorted(lost) == sorted([f"{digest(shot(i))}: no image_assets row" for i in range(6, 12)]
                                  + [f"{digest(shot(i))}: not in the store" for i in range(6, 18)])


def test_gc_racing_loads_of_new_screenshots_removes_none_of_them(settings: Settings, scrape: Scrape) -> None:
    rng = random.Random(18)
    firsts = count(0, 100)
    probe = garbage_and_tree(settings, scrape, 16, next(firsts))
    seconds = pipeline.run(probe).elapsed  # how long such a load takes here
    problems = {}
    for round_ in range(ROUNDS):
        load = garbage_and_tree(settings, scrape, 16, next(firsts))
        lost = race(settings.replace(grace_seconds=0), load, rng.uniform(-0.3 * seconds, 1.2 * seconds))
        if lost:
            problems[round_] = lost
    assert problems == {}
    collect(settings, grace_seconds=0)  # and in the end all the garbage goes, and only that
    wanted = set().union(*(keys(range(f + 8, f + 24)) for f in range(0, 100 * (ROUNDS + 1), 100)))
    assert set(local_objects(settings.image_dir)) == wanted
