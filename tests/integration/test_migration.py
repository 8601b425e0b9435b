"""init-db on an old PharmChecker schema: new key, JSONB objects, no row lost, idempotent, loadable."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg
import pytest

from loader.commands import admin
from loader.run import pipeline
from loader.settings import Settings
from tests.conftest import query
from tests.scrape import Scrape, document, license_

NEW_KEY = "UNIQUE NULLS NOT DISTINCT (dataset_id, search_state, search_name, license_number)"

# PharmChecker's own schema.sql (SERIAL ids, CHAR(2) state, naive timestamps), key varied per test.
OLD_SCHEMA = """
CREATE TABLE datasets (
  id          SERIAL PRIMARY KEY,
  kind        TEXT NOT NULL CHECK (kind IN ('states','pharmacies','validated')),
  tag         TEXT NOT NULL,
  description TEXT,
  created_by  TEXT,
  created_at  TIMESTAMP NOT NULL DEFAULT now(),
  UNIQUE(kind, tag)
);
CREATE TABLE search_results (
  id               SERIAL PRIMARY KEY,
  dataset_id       INT NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
  search_name      TEXT NOT NULL,
  search_state     CHAR(2) NOT NULL,
  search_ts        TIMESTAMP,
  license_number   TEXT,
  license_status   TEXT,
  license_name     TEXT,
  license_type     TEXT,
  address          TEXT,
  city             TEXT,
  state            TEXT,
  zip              TEXT,
  issue_date       DATE,
  expiration_date  DATE,
  result_status    TEXT,
  meta             JSONB,
  raw              JSONB,
  created_at       TIMESTAMP NOT NULL DEFAULT now()
  {key}
);
CREATE INDEX ix_results_unique_lookup ON search_results(dataset_id, search_state, license_number);
{index}
"""
KEYS = {
    "state-license-constraint": (", CONSTRAINT unique_search_result UNIQUE(dataset_id, search_state, license_number)",
                                 ""),
    "with-name-constraint": (", CONSTRAINT unique_search_result UNIQUE(dataset_id, search_state, search_name, "
                             "license_number)", ""),
    "with-name-index": ("", "CREATE UNIQUE INDEX ux_search_result ON search_results "
                            "(dataset_id, search_state, search_name, license_number);"),
}

# (dataset, name, state, license, naive search_ts, status). Three no-result rows of Beaker/PA in dataset 1 and
# two in dataset 2 collide under the new key (NULLs equal); the newest of each is kept.
OLD_ROWS: list[tuple[int, str, str, str | None, str, str | None]] = [
    (1, "Belmar", "PA", "NP002169", "2025-08-01 10:00:00", "Active"),
    (1, "Belmar", "PA", "NP002170", "2025-08-01 10:00:00", "Active"),
    (1, "Belmar", "FL", "NP002169", "2025-08-01 11:00:00", "Active"),
    (1, "Beaker", "PA", None, "2025-08-01 09:00:00", None),
    (1, "Beaker", "PA", None, "2025-08-03 09:00:00", None),
    (1, "Beaker", "PA", None, "2025-08-02 09:00:00", None),
    (1, "Wells", "PA", None, "2025-08-01 09:00:00", None),
    (2, "Beaker", "PA", None, "2025-08-05 09:00:00", None),
    (2, "Beaker", "PA", None, "2025-08-04 09:00:00", None),
]


def _build_old(dsn: str, variant: str) -> None:
    key, index = KEYS[variant]
    with psycopg.connect(dsn) as conn:
        conn.execute(OLD_SCHEMA.format(key=key, index=index).encode())
        conn.execute("INSERT INTO datasets (kind, tag) VALUES ('states', 'old-tag'), ('states', 'other-tag')")
        for ds, name, state, lic, ts, status in OLD_ROWS:
            meta = {"pharmacy_name": name, "state": state, "search_timestamp": ts}
            raw = {"metadata": meta, "search_result": {"licenses": []}}
            # The old importer stored json.dumps(...) text: JSONB *strings* holding the objects.
            conn.execute("INSERT INTO search_results (dataset_id, search_name, search_state, search_ts, license_number,"
                         " license_status, meta, raw) VALUES (%s, %s, %s, %s, %s, %s, to_jsonb(%s::text), "
                         "to_jsonb(%s::text))",
                         (ds, name, state, ts, lic, status, orjson.dumps(meta).decode(), orjson.dumps(raw).decode()))


def _unique_keys(dsn: str) -> list[tuple[Any, ...]]:
    return query(dsn, """
        SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE i.indrelid = 'search_results'::regclass AND i.indisunique AND NOT i.indisprimary""")


def _all_rows(dsn: str) -> dict[str, list[tuple[Any, ...]]]:
    cols = "id, dataset_id, search_name, search_state, search_ts, license_number, license_status, meta, raw"
    return {t: query(dsn, f"SELECT {cols} FROM {t} ORDER BY id")  # noqa: S608
            for t in ("search_results", "search_results_migration_conflicts")}


@pytest.mark.parametrize("variant", list(KEYS))
def test_init_db_migrates_an_old_schema_without_losing_a_row(settings: Settings, dsn: str, variant: str) -> None:
    _build_old(dsn, variant)
    original = query(dsn, "SELECT id, dataset_id, search_name, search_state, search_ts, license_number "
                          "FROM search_results ORDER BY id")

    admin.init_db(settings.replace(command="init-db"))

    assert query(dsn, "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                      "WHERE conrelid = 'search_results'::regclass AND contype = 'u'") == [(NEW_KEY,)]
    assert len(_unique_keys(dsn)) == 1, _unique_keys(dsn)
    assert query(dsn, "SELECT DISTINCT jsonb_typeof(meta), jsonb_typeof(raw) FROM search_results") == [
        ("object", "object")]
    assert query(dsn, "SELECT meta FROM search_results WHERE license_number = 'NP002170'") == [
        ({"pharmacy_name": "Belmar", "state": "PA", "search_timestamp": "2025-08-01 10:00:00"},)]
    assert query(dsn, "SELECT data_type FROM information_schema.columns WHERE table_name = 'search_results' "
                      "AND column_name = 'search_ts'") == [("timestamp with time zone",)]

    kept = query(dsn, "SELECT id, dataset_id, search_name, search_state, search_ts, license_number "
                      "FROM search_results ORDER BY id")
    moved = query(dsn, "SELECT id, dataset_id, search_name, search_state, search_ts, license_number "
                       "FROM search_results_migration_conflicts ORDER BY id")
    assert len(kept) + len(moved) == len(original) == len(OLD_ROWS)
    as_utc = [(*r[:4], r[4].replace(tzinfo=UTC), r[5]) for r in original]
    assert sorted(kept + moved) == sorted(as_utc)  # every row, search_ts read as UTC
    assert len(kept) == 6 and len(moved) == 3
    assert sorted((r[1], r[2], r[4]) for r in kept if r[5] is None) == [
        (1, "Beaker", datetime(2025, 8, 3, 9, 0, tzinfo=UTC)),
        (1, "Wells", datetime(2025, 8, 1, 9, 0, tzinfo=UTC)),
        (2, "Beaker", datetime(2025, 8, 5, 9, 0, tzinfo=UTC)),
    ]
    assert query(dsn, "SELECT count(*) FROM search_results WHERE result_status IS NULL") == [(0,)]


@pytest.mark.parametrize("variant", ["state-license-constraint"])
def test_init_db_again_is_a_no_op(settings: Settings, dsn: str, variant: str) -> None:
    _build_old(dsn, variant)
    init = settings.replace(command="init-db")
    admin.init_db(init)
    after_first = _all_rows(dsn), _unique_keys(dsn)
    assert admin.init_db(init) == "current"
    assert (_all_rows(dsn), _unique_keys(dsn)) == after_first


@pytest.mark.parametrize("variant", list(KEYS))
def test_load_into_a_migrated_database(settings: Settings, scrape: Scrape, dsn: str, variant: str) -> None:
    _build_old(dsn, variant)
    admin.init_db(settings.replace(command="init-db"))
    scrape.search("2025-08-06/PA/Belmar_01", document(ts="2025-08-06T10:00:00", licenses=[
        license_(license_status="Renewed")]))                                   # newer: updates an old row
    scrape.search("2025-08-06/PA/BelmarRx_01", document(name="Belmar Rx", ts="2025-08-06T10:00:00"))  # same number
    scrape.search("2025-08-02/PA/Beaker_01", document(name="Beaker", ts="2025-08-02T12:00:00", licenses=[]))  # older
    scrape.search("2025-08-06/FL/Wells_01", document(name="Wells", state="FL", licenses=[], result_status=None))
    rep = pipeline.run(settings.replace(tag="old-tag"))
    assert (rep.files_loaded, rep.files_rejected) == (4, 0)
    assert (rep.rows_inserted, rep.rows_updated) == (2, 1)
    assert query(dsn, "SELECT search_name, license_status, result_status FROM search_results "
                      "WHERE dataset_id = 1 AND search_state = 'PA' AND license_number = 'NP002169' ORDER BY 1") == [
        ("Belmar", "Renewed", "found"), ("Belmar Rx", "Active", "found")]
    assert query(dsn, "SELECT search_ts FROM search_results WHERE dataset_id = 1 AND search_name = 'Beaker'") == [
        (datetime(2025, 8, 3, 9, 0, tzinfo=UTC),)]
    assert query(dsn, "SELECT count(*) FROM search_results") == [(8,)]
    assert query(dsn, "SELECT count(*) FROM datasets") == [(2,)]


def test_rows_pointing_at_a_moved_row_are_kept_and_repointed(settings: Settings, dsn: str) -> None:
    """PharmChecker's match_scores reference search_results ON DELETE CASCADE: the migration must not
    let a row set aside take its scores with it."""
    _build_old(dsn, "state-license-constraint")
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE TABLE match_scores (id SERIAL PRIMARY KEY, "
                     "result_id INT NOT NULL REFERENCES search_results(id) ON DELETE CASCADE, score NUMERIC)")
        conn.execute("INSERT INTO match_scores (result_id, score) SELECT id, id FROM search_results")
    admin.init_db(settings.replace(command="init-db"))
    assert query(dsn, "SELECT count(*) FROM match_scores") == [(len(OLD_ROWS),)]
    assert query(dsn, "SELECT count(*) FROM match_scores m LEFT JOIN search_results r ON r.id = m.result_id "
                      "WHERE r.id IS NULL") == [(0,)]
    # The scores of the three Beaker/PA no-result rows of dataset 1 now all point at the newest one.
    assert query(dsn, "SELECT r.search_ts, count(*) FROM match_scores m JOIN search_results r ON r.id = m.result_id "
                      "WHERE r.dataset_id = 1 AND r.search_name = 'Beaker' GROUP BY 1") == [
        (datetime(2025, 8, 3, 9, 0, tzinfo=UTC), 3)]
