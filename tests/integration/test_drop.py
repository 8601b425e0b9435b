"""`pharmload drop`: exactly one tag goes, with its rows, load history, manifests and the rows of
PharmChecker's tables that cascade from them; nothing of another tag, and no screenshot."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from loader.commands import drop
from loader.db.merge import LOCK_NAMESPACE
from loader.errors import InUseError, LockBusyError
from loader.run import pipeline
from loader.run.manifest import of_tag
from loader.settings import Settings
from tests.conftest import query
from tests.scrape import Scrape
from tests.support.lifecycle import folder, image_rows, local_objects, tag_rows


def yes(plan: drop.Plan) -> bool:
    return True


def recording(plans: list[drop.Plan]) -> Callable[[drop.Plan], bool]:
    """A confirmation that says yes and keeps the plan it was shown."""
    def confirm(plan: drop.Plan) -> bool:
        plans.append(plan)
        return True

    return confirm


@pytest.fixture
def two_tags(settings: Settings, scrape: Scrape, dsn: str) -> Settings:
    """Tags A (screenshots 0-5) and B (3-8) loaded, and PharmChecker's match_scores with a score per
    row of either; returns the settings of a drop of A."""
    pipeline.run(settings.replace(states_dir=folder(scrape, "a", range(6)), tag="A"))
    pipeline.run(settings.replace(states_dir=folder(scrape, "b", range(3, 9)), tag="B"))
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE TABLE match_scores (id serial PRIMARY KEY, "
                     "result_id bigint NOT NULL REFERENCES search_results (id) ON DELETE CASCADE, score numeric)")
        conn.execute("INSERT INTO match_scores (result_id, score) SELECT id, id FROM search_results")
    return settings.replace(command="drop", tag="A", states_dir=None)


def scores(dsn: str) -> list[tuple[str, int]]:
    return query(dsn, """SELECT d.tag, count(*)::int FROM match_scores m JOIN search_results r ON r.id = m.result_id
                         JOIN datasets d ON d.id = r.dataset_id GROUP BY 1 ORDER BY 1""")


def test_drop_removes_one_tag_and_nothing_of_another(two_tags: Settings, dsn: str) -> None:
    s = two_tags
    b_rows, images, store = tag_rows(dsn, "B"), image_rows(dsn), local_objects(s.image_dir)
    b_manifests = of_tag(s.manifest_dir, "B")
    [(a_manifest, _)] = of_tag(s.manifest_dir, "A")
    assert a_manifest.with_suffix(".seal.json").exists()
    assert scores(dsn) == [("A", 6), ("B", 6)]

    shown: list[drop.Plan] = []
    out = drop.drop(s, recording(shown))

    [plan] = shown
    assert (plan.rows, plan.runs, plan.images, plan.images_only_here) == (6, 1, 6, 3)
    assert [(r.table, r.rows, r.on_delete) for r in plan.references] == [("public.match_scores", 6, "c")]
    assert plan.manifests == [(a_manifest, str(s.manifest_dir.parent / "scrape" / "a"))]
    assert out.status == "dropped"
    assert out.removed == {"search_results": 6, "load_runs": 1, "public.match_scores": 6, "datasets": 1}
    assert out.manifests_removed == [str(a_manifest)]
    assert query(dsn, "SELECT tag FROM datasets") == [("B",)]
    assert query(dsn, "SELECT DISTINCT tag FROM load_runs") == [("B",)]
    assert tag_rows(dsn, "A") == [] and tag_rows(dsn, "B") == b_rows
    assert scores(dsn) == [("B", 6)] and query(dsn, "SELECT count(*) FROM match_scores") == [(6,)]
    assert not a_manifest.exists() and not a_manifest.with_suffix(".seal.json").exists()
    assert of_tag(s.manifest_dir, "B") == b_manifests
    # Screenshots are gc's business: rows and objects all stay.
    assert image_rows(dsn) == images and local_objects(s.image_dir) == store


def test_a_plain_foreign_key_holding_rows_of_the_tag_refuses_the_drop(two_tags: Settings, dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE TABLE reviews (id serial PRIMARY KEY, result_id bigint REFERENCES search_results (id))")
        conn.execute("""INSERT INTO reviews (result_id) SELECT r.id FROM search_results r
                        JOIN datasets d ON d.id = r.dataset_id WHERE d.tag = 'B'""")

    # Rows of B only: the drop of A goes ahead, and the reviews stay.
    out = drop.drop(two_tags, yes)
    assert out.status == "dropped" and query(dsn, "SELECT count(*) FROM reviews") == [(6,)]

    # A review of one of A's rows: refused, naming the table, and nothing removed.
    pipeline.run(two_tags.replace(command="load", states_dir=two_tags.manifest_dir.parent / "scrape" / "a"))
    with psycopg.connect(dsn) as conn:
        conn.execute("""INSERT INTO match_scores (result_id, score) SELECT r.id, 1 FROM search_results r
                        JOIN datasets d ON d.id = r.dataset_id WHERE d.tag = 'A'""")
        conn.execute("""INSERT INTO reviews (result_id) SELECT min(r.id) FROM search_results r
                        JOIN datasets d ON d.id = r.dataset_id WHERE d.tag = 'A'""")
    before = (tag_rows(dsn, "A"), scores(dsn), of_tag(two_tags.manifest_dir, "A"))
    asked: list[drop.Plan] = []
    with pytest.raises(InUseError) as refused:
        drop.drop(two_tags, recording(asked))
    assert "1 rows of table public.reviews refer to rows of tag 'A' through foreign key reviews_result_id_fkey" \
        in str(refused.value)
    assert "nothing was removed" in str(refused.value)
    assert asked == []  # refused before asking
    assert (tag_rows(dsn, "A"), scores(dsn), of_tag(two_tags.manifest_dir, "A")) == before
    assert before[0] and before[2]


def test_dry_run_and_a_refused_confirmation_change_nothing(two_tags: Settings, dsn: str) -> None:
    def state() -> tuple[object, ...]:
        return (query(dsn, "SELECT tag FROM datasets ORDER BY 1"), tag_rows(dsn, "A"), scores(dsn),
                query(dsn, "SELECT count(*) FROM load_runs"), sorted(two_tags.manifest_dir.iterdir()))

    before = state()
    dry = drop.drop(two_tags.replace(dry_run=True), yes)
    assert dry.status == "dry-run" and (dry.plan.rows, dry.plan.runs, len(dry.plan.manifests)) == (6, 1, 1)
    no = drop.drop(two_tags, lambda plan: False)
    assert no.status == "cancelled"
    assert state() == before


def test_a_tag_without_a_dataset_has_nothing_to_drop(settings: Settings, dsn: str) -> None:
    out = drop.drop(settings.replace(command="drop", tag="never-loaded"), yes)
    assert out.status == "absent" and out.removed == {}


def test_a_running_load_of_the_tag_is_waited_for_or_refused(two_tags: Settings, dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as load:  # holds the tag's lock, as a running load does
        load.execute("SELECT pg_advisory_lock(%s, hashtext('A'))", (LOCK_NAMESPACE,))
        with pytest.raises(LockBusyError, match="a load of tag 'A' is running"):
            drop.drop(two_tags.replace(lock_wait=False), yes)
        done: list[drop.Outcome] = []
        waiting = threading.Thread(target=lambda: done.append(drop.drop(two_tags, yes)))
        waiting.start()
        time.sleep(1.0)
        assert waiting.is_alive() and tag_rows(dsn, "A")  # still waiting, nothing removed
        load.execute("SELECT pg_advisory_unlock(%s, hashtext('A'))", (LOCK_NAMESPACE,))
        waiting.join(30)
    assert done[0].status == "dropped" and tag_rows(dsn, "A") == []


def test_the_tag_loads_again_after_a_drop(two_tags: Settings, dsn: str, scrape: Scrape) -> None:
    before = tag_rows(dsn, "A")
    drop.drop(two_tags, yes)
    again = pipeline.run(two_tags.replace(command="load", states_dir=scrape.root / "a"))
    assert (again.files_skipped, again.rows_inserted) == (0, 6)  # no manifest left to skip anything by
    assert tag_rows(dsn, "A") == before


def test_metrics_keep_other_tags_and_forget_the_dropped_one(two_tags: Settings, tmp_path: Path,
                                                            scrape: Scrape) -> None:
    metrics = tmp_path / "pharmload.prom"
    for tag, name in (("A", "a"), ("B", "b")):
        pipeline.run(two_tags.replace(command="load", tag=tag, states_dir=scrape.root / name, metrics_file=metrics))
    drop.drop(two_tags.replace(metrics_file=metrics), yes)
    text = metrics.read_text()
    assert 'tag="A"' not in text and 'pharmload_last_run_success{tag="B"} 1.0' in text
    assert 'pharmload_cleanup_success{command="drop"} 1.0' in text
    assert 'pharmload_cleanup_removed_rows{command="drop",table="search_results"} 6.0' in text
    assert 'pharmload_cleanup_removed_rows{command="drop",table="load_runs"} 2.0' in text
