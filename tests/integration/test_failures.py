"""A load that fails leaves the database exactly as it was; an old-shape database is refused, not changed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from loader.errors import LoadError
from loader.run import pipeline
from loader.settings import Settings
from tests.conftest import query
from tests.scrape import Scrape, document, license_

TABLES = ("datasets", "search_results", "image_assets", "load_runs")


def snapshot(dsn: str) -> dict[str, list[tuple[Any, ...]]]:
    return {t: query(dsn, f"SELECT * FROM {t} ORDER BY 1") for t in TABLES}  # noqa: S608


def execute(dsn: str, sql: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.encode())


def _changed_tree(scrape: Scrape) -> None:
    """Newer searches of stored keys, a new key, a new screenshot, a no-result search."""
    scrape.search("2025-08-04/PA/Belmar_01", document(ts="2025-08-04T10:00:00", licenses=[
        license_(license_status="Expired"), license_(license_number="NEW1")]))
    scrape.search("2025-08-04/NY/Beaker_01", document(name="Beaker", state="NY", licenses=[], result_status=None))


@pytest.fixture
def loaded(settings: Settings, tmp_path: Path, dsn: str) -> Settings:
    first = Scrape(tmp_path / "first")
    first.search("2025-08-03/PA/Belmar_01", document())
    first.search("2025-08-03/FL/Belmar_01", document(state="FL"))
    rep = pipeline.run(settings.replace(states_dir=first.root))
    assert rep.rows_inserted == 2
    return settings


@pytest.mark.parametrize("tag", ["test-tag", "new-tag"])
def test_failure_in_the_merge_leaves_the_database_as_it_was(loaded: Settings, scrape: Scrape, dsn: str,
                                                            tag: str) -> None:
    before = snapshot(dsn)
    execute(dsn, """
        CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'injected failure'; END $$;
        CREATE TRIGGER boom BEFORE INSERT OR UPDATE ON search_results FOR EACH ROW EXECUTE FUNCTION boom();
    """)
    _changed_tree(scrape)
    with pytest.raises(LoadError, match="injected failure"):
        pipeline.run(loaded.replace(tag=tag))
    assert snapshot(dsn) == before

    # Nothing of the failed load lingers: once the fault is gone, the same load applies in full.
    execute(dsn, "DROP TRIGGER boom ON search_results")
    rep = pipeline.run(loaded.replace(tag=tag))
    assert (rep.files_loaded, rep.files_skipped) == (2, 0)
    expected = (2, 1) if tag == "test-tag" else (3, 0)
    assert (rep.rows_inserted, rep.rows_updated) == expected


def test_failure_storing_screenshots_leaves_the_database_as_it_was(loaded: Settings, scrape: Scrape, dsn: str,
                                                                  tmp_path: Path) -> None:
    before = snapshot(dsn)
    blocked = tmp_path / "not-a-folder"
    blocked.write_bytes(b"a file where the image store should be")
    _changed_tree(scrape)
    with pytest.raises(LoadError):
        pipeline.run(loaded.replace(image_dir=blocked))
    assert snapshot(dsn) == before


def test_failure_reports_status_failed(loaded: Settings, scrape: Scrape, dsn: str, tmp_path: Path) -> None:
    execute(dsn, "ALTER TABLE search_results ADD CONSTRAINT no_expired CHECK (license_status <> 'Expired')")
    _changed_tree(scrape)
    report_json = tmp_path / "report.json"
    with pytest.raises(LoadError):
        pipeline.run(loaded.replace(report_json=report_json))
    text = report_json.read_text()
    assert '"status": "failed"' in text and "no_expired" in text
    assert query(dsn, "SELECT count(*) FROM load_runs") == [(1,)]


OLD_SHAPE = """
    CREATE TABLE datasets (
        id bigserial PRIMARY KEY, kind text NOT NULL, tag text NOT NULL, description text, created_by text,
        created_at timestamptz NOT NULL DEFAULT now(), UNIQUE (kind, tag));
    CREATE TABLE search_results (
        id bigserial PRIMARY KEY, dataset_id bigint REFERENCES datasets (id), search_name text, search_state text,
        search_ts timestamp, license_number text, license_status text, license_name text, license_type text,
        address text, city text, state text, zip text, issue_date date, expiration_date date,
        result_status text, meta jsonb, raw jsonb, image_hash text,
        UNIQUE (dataset_id, search_state, license_number));
    INSERT INTO datasets (kind, tag) VALUES ('states', 'test-tag');
    INSERT INTO search_results (dataset_id, search_name, search_state, search_ts, license_number, meta)
    VALUES (1, 'Belmar', 'PA', '2025-08-01 10:00', 'NP002169', to_jsonb('{"state": "PA"}'::text));
"""


def test_load_into_an_old_shape_database_is_refused(settings: Settings, scrape: Scrape, dsn: str) -> None:
    execute(dsn, OLD_SHAPE)
    before = {t: query(dsn, f"SELECT * FROM {t} ORDER BY 1") for t in ("datasets", "search_results")}  # noqa: S608
    scrape.search("2025-08-03/PA/Belmar_01", document())
    with pytest.raises(LoadError, match="init-db"):
        pipeline.run(settings)
    assert {t: query(dsn, f"SELECT * FROM {t} ORDER BY 1") for t in before} == before  # noqa: S608
    assert query(dsn, "SELECT to_regclass('load_runs'), to_regclass('image_assets')") == [(None, None)]
    assert query(dsn, "SELECT data_type FROM information_schema.columns WHERE table_name = 'search_results' "
                      "AND column_name = 'search_ts'") == [("timestamp without time zone",)]
