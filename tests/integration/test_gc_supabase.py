"""drop, gc and status on the Supabase backend, against the real Supabase Storage server (the kit in
../shared/supabase-storage; fixtures in tests/integration/conftest.py), a bucket of each test's own."""

from __future__ import annotations

import hashlib
import random

import psycopg
import pytest

from loader.commands import admin, drop
from loader.run import pipeline
from loader.settings import Settings
from loader.stores import supabase
from loader.stores.local import storage_path
from tests.conftest import query
from tests.scrape import Scrape
from tests.support.lifecycle import (
    collect,
    dangling,
    digest,
    folder,
    garbage_and_tree,
    gc_while_storing,
    image_rows,
    keys,
    race,
    shot,
)
from tests.support.lifecycle import stored as bucket


def test_gc_after_a_drop_removes_exactly_the_screenshots_no_other_tag_uses(supa: Settings, scrape: Scrape,
                                                                           dsn: str) -> None:
    pipeline.run(supa.replace(states_dir=folder(scrape, "a", range(6)), tag="A"))
    pipeline.run(supa.replace(states_dir=folder(scrape, "b", range(3, 9)), tag="B"))
    assert set(bucket(supa)) == keys(range(9))
    drop.drop(supa.replace(command="drop", tag="A"), lambda plan: True)
    assert set(bucket(supa)) == keys(range(9))  # a drop leaves the screenshots to gc

    rows = query(dsn, "SELECT * FROM image_assets ORDER BY 1")
    dry = collect(supa, dry_run=True)
    assert (dry.rows_removed, dry.objects_removed, dry.bytes_removed) == (3, 3, sum(len(shot(i)) for i in range(3)))
    assert set(bucket(supa)) == keys(range(9)) and query(dsn, "SELECT * FROM image_assets ORDER BY 1") == rows

    out = collect(supa)
    assert (out.status, out.rows_removed, out.objects_removed, out.bytes_removed) == (
        "ok", 3, 3, sum(len(shot(i)) for i in range(3)))
    objects = bucket(supa)
    assert set(objects) == keys(range(3, 9)) and image_rows(dsn) == {digest(shot(i)) for i in range(3, 9)}
    assert dangling(dsn, objects) == []


def test_bulk_removal_in_batches_and_rows_left_pending(supa: Settings, scrape: Scrape, dsn: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supabase, "DELETE_BATCH", 3)  # 10 objects: four requests, up to 4 at a time
    pipeline.run(supa.replace(states_dir=folder(scrape, "a", range(10)), tag="A"))
    pending = hashlib.sha256(b"never uploaded").hexdigest()
    with psycopg.connect(dsn) as conn:  # an upload that failed, of a search since superseded
        conn.execute("INSERT INTO image_assets (content_hash, storage_path, storage_type, file_size) "
                     "VALUES (%s, %s, 'pending', 14)", (pending, storage_path(pending)))
    tags, images = admin.status(supa.replace(command="status"))
    assert [d["tag"] for d in tags] == ["A"]
    assert images["store"] == {"name": f"bucket {supa.bucket} at {supa.supabase_url}", "objects": 10,
                               "bytes": sum(len(shot(i)) for i in range(10))}
    assert (images["rows"], images["unreferenced"], images["pending"]) == (11, 1, 1)

    drop.drop(supa.replace(command="drop", tag="A"), lambda plan: True)
    out = collect(supa)
    assert (out.rows_removed, out.objects_removed, out.failed) == (11, 10, {})
    assert bucket(supa) == {} and image_rows(dsn) == set()


def test_a_gc_started_while_a_supabase_load_stores_waits_for_its_commit(
        supa: Settings, scrape: Scrape, dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline.run(supa.replace(states_dir=folder(scrape, "old", range(12)), tag="old"))
    drop.drop(supa.replace(command="drop", tag="old"), lambda plan: True)
    seen = gc_while_storing(monkeypatch, supa.replace(grace_seconds=0))
    pipeline.run(supa.replace(states_dir=folder(scrape, "new", range(6, 18)), tag="new"))
    assert seen["waited"]
    seen["thread"].join(60)
    objects = bucket(supa)
    assert dangling(dsn, objects) == [] and set(objects) == keys(range(6, 18))


def test_gc_racing_supabase_loads_removes_none_of_their_screenshots(supa: Settings, scrape: Scrape,
                                                                    dsn: str) -> None:
    rng = random.Random(18)
    problems = {}
    for round_ in range(10):
        load = garbage_and_tree(supa, scrape, 8, 100 * round_)
        lost = race(supa.replace(grace_seconds=0), load, rng.uniform(-0.2, 0.8))
        if lost:
            problems[round_] = lost
    assert problems == {}


def test_a_bucket_that_does_not_exist_is_an_empty_store(supa: Settings, dsn: str) -> None:
    admin.init_db(supa)
    pending = hashlib.sha256(b"never uploaded").hexdigest()
    with psycopg.connect(dsn) as conn:
        conn.execute("INSERT INTO image_assets (content_hash, storage_path, storage_type, file_size) "
                     "VALUES (%s, %s, 'pending', 14)", (pending, storage_path(pending)))
    _, images = admin.status(supa.replace(command="status"))
    assert images["store"]["objects"] == 0 and images["pending"] == 1
    out = collect(supa)
    assert (out.status, out.rows_removed, out.objects_removed, out.failed) == ("ok", 1, 0, {})
