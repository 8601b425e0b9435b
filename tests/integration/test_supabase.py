"""The Supabase backend: a Supabase-shaped database role (through PgBouncer in transaction mode where the
machine has it) and the Storage API's loopback stand-in, driven by the real `supabase` client."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from benchmarks.corpus import CorpusSpec, generate
from loader.run import pipeline
from loader.settings import Settings
from tests.conftest import manifest_text, query
from tests.support import pgbouncer
from tests.support.storage_standin import StorageStandin

KEY = "service-key-" + uuid.uuid4().hex
BUCKET = "imagecache"


@pytest.fixture
def standin() -> Iterator[StorageStandin]:
    with StorageStandin(service_key=KEY) as s:
        yield s


@pytest.fixture
def supa_dsn(admin_dsn: str) -> Iterator[str]:
    """A database owned by a non-superuser role shaped like Supabase's `postgres` (2 min statement_timeout)."""
    role, name = f"supa_{uuid.uuid4().hex[:8]}", f"pharmload_supa_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE").format(sql.Identifier(role)))
        conn.execute(sql.SQL("ALTER ROLE {} SET statement_timeout = '2min'").format(sql.Identifier(role)))
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(role)))
    try:
        yield make_conninfo(admin_dsn, dbname=name, user=role)
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@pytest.fixture
def pooled_dsn(supa_dsn: str) -> Iterator[str]:
    """supa_dsn through PgBouncer in transaction mode, like Supabase's pooler on port 6543."""
    why = pgbouncer.available()
    if why:
        pytest.skip(why)
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(supa_dsn)
    folder = Path(f"/var/tmp/pharmload-test-{os.getuid()}") / f"pgbouncer-{uuid.uuid4().hex[:8]}"
    bouncer = pgbouncer.PgBouncer(supa_dsn, str(params["user"]), folder)
    bouncer.start()
    try:
        yield bouncer.dsn(str(params["dbname"]))
    finally:
        bouncer.stop()


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    generate(root, CorpusSpec(files=120, image_bytes=3000, days=3, seed=7))
    return root


def supabase_settings(settings: Settings, dsn: str, standin: StorageStandin, states_dir: Path) -> Settings:
    return settings.replace(backend="supabase", dsn=dsn, supabase_url=standin.url, supabase_key=KEY,
                            bucket=BUCKET, states_dir=states_dir, max_concurrent_uploads=4, retry_delay=0.01,
                            statement_timeout_ms=600_000)


def content(dsn: str) -> dict[str, Any]:
    return {
        "rows": query(dsn, """SELECT search_name, search_state, search_ts, license_number, license_status,
                                     license_name, license_type, address, city, state, zip, issue_date,
                                     expiration_date, result_status, meta, raw, image_hash
                              FROM search_results ORDER BY 2, 1, 4 NULLS FIRST"""),
        "images": query(dsn, """SELECT content_hash, storage_path, file_size, content_type, width, height
                                FROM image_assets ORDER BY 1"""),
    }


def local_store(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*.png")}


@pytest.mark.parametrize("through", ["direct", "transaction-pooler"])
def test_supabase_backend_loads_what_the_local_backend_loads(
        through: str, request: pytest.FixtureRequest, settings: Settings, dsn: str, supa_dsn: str,
        standin: StorageStandin, corpus: Path) -> None:
    target = supa_dsn if through == "direct" else request.getfixturevalue("pooled_dsn")
    local = pipeline.run(settings.replace(states_dir=corpus))
    remote = pipeline.run(supabase_settings(settings, target, standin, corpus).replace(
        manifest_dir=settings.manifest_dir / "supa"))

    assert (remote.rows_inserted, remote.files_rejected) == (local.rows_inserted, local.files_rejected)
    assert content(supa_dsn) == content(dsn)
    assert query(supa_dsn, "SELECT DISTINCT storage_type FROM image_assets") == [("supabase",)]
    assert standin.objects(BUCKET) == local_store(settings.image_dir)
    for path, data in standin.objects(BUCKET).items():
        assert path == f"sha256/{path.split('/')[-1][:2]}/{path.split('/')[-1][2:4]}/{path.split('/')[-1]}"
        assert hashlib.sha256(data).hexdigest() + ".png" == path.split("/")[-1]
        assert standin.object_meta(BUCKET, path)["content_type"] == "image/png"
    assert standin.buckets[BUCKET]["public"] is False
    # One bulk listing per run, never a per-file existence check.
    assert standin.count_requests("GET", "/object/info") == 0
    assert standin.count_requests("POST", "/object/list-v2/") == 1


def test_rerun_uploads_nothing_and_asks_once(settings: Settings, supa_dsn: str, standin: StorageStandin,
                                             corpus: Path) -> None:
    s = supabase_settings(settings, supa_dsn, standin, corpus)
    first = pipeline.run(s)
    standin.clear_requests()
    again = pipeline.run(s.replace(full=True))
    assert first.images_stored > 0 and again.images_stored == 0
    assert standin.count_requests("POST", "/object/" + BUCKET) == 0
    assert standin.count_requests("POST", "/object/list-v2/") == 1


@pytest.mark.parametrize("fault", [{"status": 429}, {"status": 500}, {"status": 503}, {"drop": True},
                                   {"delay": 0.3}])
def test_transient_storage_faults_are_retried(fault: dict[str, Any], settings: Settings, supa_dsn: str,
                                              standin: StorageStandin, scrape_small: Path) -> None:
    standin.inject(times=3, match=f"POST /storage/v1/object/{BUCKET}/sha256", **fault)
    rep = pipeline.run(supabase_settings(settings, supa_dsn, standin, scrape_small).replace(upload_timeout=5))
    assert rep.images_failed == 0
    assert len(standin.objects(BUCKET)) == rep.images_referenced == 4
    assert query(supa_dsn, "SELECT DISTINCT storage_type FROM image_assets") == [("supabase",)]


def test_upload_that_keeps_failing_is_reported_and_done_by_the_next_run(
        settings: Settings, supa_dsn: str, standin: StorageStandin, scrape_small: Path) -> None:
    victim = next(iter(sorted(scrape_small.rglob("*.png"))))
    victim_hash = hashlib.sha256(victim.read_bytes()).hexdigest()
    standin.inject(status=500, times=1000, match=victim_hash)
    s = supabase_settings(settings, supa_dsn, standin, scrape_small).replace(retries=2)
    rep = pipeline.run(s)
    assert rep.status == "ok" and rep.images_failed == 1
    assert rep.warnings_by_kind.get("upload_failed") == 1
    assert query(supa_dsn, "SELECT storage_type FROM image_assets WHERE content_hash = %s",
                 (victim_hash,)) == [("pending",)]
    assert query(supa_dsn, "SELECT count(*) FROM search_results WHERE image_hash = %s", (victim_hash,)) == [(1,)]
    assert len(standin.objects(BUCKET)) == 3

    standin.reset_faults()
    again = pipeline.run(s)
    assert again.files_skipped == 4 and again.images_stored == 1
    assert query(supa_dsn, "SELECT DISTINCT storage_type FROM image_assets") == [("supabase",)]
    assert len(standin.objects(BUCKET)) == 4


@pytest.fixture
def scrape_small(tmp_path: Path) -> Path:
    from tests.scrape import Scrape, document

    scrape = Scrape(tmp_path / "small")
    for i, state in enumerate(["PA", "FL", "TX", "NY"]):
        scrape.search(f"2025-08-03/{state}/Belmar_0{i}", document(state=state))
    return scrape.root


def test_credentials_never_appear_in_any_output(settings: Settings, supa_dsn: str, standin: StorageStandin,
                                                scrape_small: Path, tmp_path: Path) -> None:
    report, rejects = tmp_path / "report.json", tmp_path / "rejects.jsonl"
    env = {**os.environ, "SUPABASE_URL": standin.url, "SUPABASE_SERVICE_KEY": KEY, "SUPABASE_DB_URL": supa_dsn}
    args = [sys.executable, "-m", "loader", "load", "--backend", "supabase", "--states-dir", str(scrape_small),
            "--tag", "t", "--manifest-dir", str(tmp_path / "m"), "--report-json", str(report),
            "--rejects", str(rejects), "--debug-log"]
    ok = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
    assert ok.returncode == 0, ok.stderr
    standin.inject(status=401, times=1000)  # the key is refused: the error path must not print it either
    bad = subprocess.run([*args, "--full"], capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 3 and "cannot" in bad.stderr and "bucket" in bad.stderr
    outputs = [ok.stdout, ok.stderr, bad.stdout, bad.stderr, report.read_text(), rejects.read_text()]
    outputs += [manifest_text(p) for p in (tmp_path / "m").glob("*.parquet")]
    assert outputs[-1]  # the manifest was written, and is checked too
    assert not any(KEY in text for text in outputs)


def test_missing_credentials_are_a_usage_error(supa_dsn: str, scrape_small: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPABASE")}
    res = subprocess.run([sys.executable, "-m", "loader", "load", "--backend", "supabase", "--states-dir",
                          str(scrape_small), "--tag", "t", "--dsn", supa_dsn], capture_output=True, text=True,
                         env=env, timeout=60)
    assert res.returncode == 2
    assert "SUPABASE_URL" in res.stderr and "SUPABASE_SERVICE_KEY" in res.stderr
