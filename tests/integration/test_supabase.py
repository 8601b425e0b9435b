"""The Supabase backend: a Supabase-shaped database role (through PgBouncer in transaction mode where the
machine has it) and the real Storage server (tests/support/storage_kit.py), behind our fault proxy
(tests/support/faultproxy.py) where a test needs failures or wants to count requests."""

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
from tests.support.faultproxy import FaultProxy
from tests.support.lifecycle import stored
from tests.support.storage_kit import StorageServer, supabase_settings


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


def through(settings: Settings, proxy: FaultProxy, server: StorageServer, bucket: str, dsn: str,
            states_dir: Path) -> Settings:
    """Supabase settings for a load of states_dir into dsn, through the proxy to the real server."""
    return supabase_settings(settings, proxy.url, server.key, bucket, dsn=dsn, states_dir=states_dir,
                             statement_timeout_ms=600_000)


def content_types(server: StorageServer, bucket: str) -> set[str]:
    """The content types the server records for the bucket's objects."""
    import httpx

    got = httpx.post(f"{server.storage_url}/object/list-v2/{bucket}", json={"prefix": "sha256/", "limit": 1000},
                     headers={"authorization": f"Bearer {server.key}"}).json()
    return {o["metadata"]["mimetype"] for o in got["objects"]}


def bucket_info(server: StorageServer, bucket: str) -> dict[str, Any]:
    import httpx

    info: dict[str, Any] = httpx.get(f"{server.storage_url}/bucket/{bucket}",
                                     headers={"authorization": f"Bearer {server.key}"}).json()
    return info


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


@pytest.mark.parametrize("path", ["direct", "transaction-pooler"])
def test_supabase_backend_loads_what_the_local_backend_loads(
        path: str, request: pytest.FixtureRequest, settings: Settings, dsn: str, supa_dsn: str,
        storage_server: StorageServer, fault_proxy: FaultProxy, bucket_name: str, corpus: Path) -> None:
    target = supa_dsn if path == "direct" else request.getfixturevalue("pooled_dsn")
    local = pipeline.run(settings.replace(states_dir=corpus))
    s = through(settings, fault_proxy, storage_server, bucket_name, target, corpus)
    remote = pipeline.run(s.replace(manifest_dir=settings.manifest_dir / "supa"))

    assert (remote.rows_inserted, remote.files_rejected) == (local.rows_inserted, local.files_rejected)
    assert content(supa_dsn) == content(dsn)
    assert query(supa_dsn, "SELECT DISTINCT storage_type FROM image_assets") == [("supabase",)]
    # One bulk listing per run, never a per-file existence check.
    assert fault_proxy.count("GET", "/object/info") == fault_proxy.count("HEAD", "/object") == 0
    assert fault_proxy.count("POST", "/object/list-v2/") == 1
    uploads = fault_proxy.count("POST", f"/object/{bucket_name}/sha256/", 200)
    objects = stored(s)
    assert uploads == len(objects) > 0
    assert objects == local_store(settings.image_dir)
    for key, data in objects.items():
        name = key.split("/")[-1]
        assert key == f"sha256/{name[:2]}/{name[2:4]}/{name}"
        assert hashlib.sha256(data).hexdigest() + ".png" == name
    assert content_types(storage_server, bucket_name) == {"image/png"}
    assert bucket_info(storage_server, bucket_name)["public"] is False


def test_rerun_uploads_nothing_and_asks_once(settings: Settings, supa_dsn: str, storage_server: StorageServer,
                                             fault_proxy: FaultProxy, bucket_name: str, corpus: Path) -> None:
    s = through(settings, fault_proxy, storage_server, bucket_name, supa_dsn, corpus)
    first = pipeline.run(s)
    fault_proxy.clear_requests()
    again = pipeline.run(s.replace(full=True))
    assert first.images_stored > 0 and again.images_stored == 0
    assert fault_proxy.count("POST", f"/object/{bucket_name}/") == 0
    assert fault_proxy.count("POST", "/object/list-v2/") == 1


def test_the_listing_pages_past_a_thousand_objects(settings: Settings, supa_dsn: str, storage_server: StorageServer,
                                                   fault_proxy: FaultProxy, bucket_name: str, tmp_path: Path) -> None:
    root = tmp_path / "big"
    generate(root, CorpusSpec(files=1100, image_bytes=200, days=1, seed=3))
    s = through(settings, fault_proxy, storage_server, bucket_name, supa_dsn, root).replace(
        max_concurrent_uploads=16)
    first = pipeline.run(s)
    assert first.images_stored == first.images_referenced > 1000 and first.images_failed == 0
    fault_proxy.clear_requests()
    again = pipeline.run(s.replace(full=True))
    assert again.images_stored == 0 and fault_proxy.count("POST", f"/object/{bucket_name}/") == 0
    assert fault_proxy.count("POST", "/object/list-v2/", 200) == 2


@pytest.mark.parametrize("fault", [{"status": 429}, {"status": 500}, {"status": 503}, {"drop": True},
                                   {"delay": 0.3}])
def test_transient_storage_faults_are_retried(fault: dict[str, Any], settings: Settings, supa_dsn: str,
                                              storage_server: StorageServer, fault_proxy: FaultProxy,
                                              bucket_name: str, scrape_small: Path) -> None:
    fault_proxy.inject(times=3, match=f"POST /object/{bucket_name}/sha256", **fault)
    s = through(settings, fault_proxy, storage_server, bucket_name, supa_dsn, scrape_small)
    rep = pipeline.run(s.replace(upload_timeout=5))
    assert rep.images_failed == 0
    assert len(stored(s)) == rep.images_referenced == 4
    assert fault_proxy.rules[0].times == 0  # all three faults were met, and retried
    assert query(supa_dsn, "SELECT DISTINCT storage_type FROM image_assets") == [("supabase",)]


def test_upload_that_keeps_failing_is_reported_and_done_by_the_next_run(
        settings: Settings, supa_dsn: str, storage_server: StorageServer, fault_proxy: FaultProxy,
        bucket_name: str, scrape_small: Path) -> None:
    victim = next(iter(sorted(scrape_small.rglob("*.png"))))
    victim_hash = hashlib.sha256(victim.read_bytes()).hexdigest()
    fault_proxy.inject(status=500, times=1000, match=victim_hash)
    s = through(settings, fault_proxy, storage_server, bucket_name, supa_dsn, scrape_small).replace(retries=2)
    rep = pipeline.run(s)
    assert rep.status == "ok" and rep.images_failed == 1
    assert rep.warnings_by_kind.get("upload_failed") == 1
    assert query(supa_dsn, "SELECT storage_type FROM image_assets WHERE content_hash = %s",
                 (victim_hash,)) == [("pending",)]
    assert query(supa_dsn, "SELECT count(*) FROM search_results WHERE image_hash = %s", (victim_hash,)) == [(1,)]
    assert len(stored(s)) == 3

    fault_proxy.reset_faults()
    again = pipeline.run(s)
    assert again.files_skipped == 4 and again.images_stored == 1
    assert query(supa_dsn, "SELECT DISTINCT storage_type FROM image_assets") == [("supabase",)]
    assert len(stored(s)) == 4


@pytest.fixture
def scrape_small(tmp_path: Path) -> Path:
    from tests.scrape import Scrape, document

    scrape = Scrape(tmp_path / "small")
    for i, state in enumerate(["PA", "FL", "TX", "NY"]):
        scrape.search(f"2025-08-03/{state}/Belmar_0{i}", document(state=state))
    return scrape.root


def test_credentials_never_appear_in_any_output(settings: Settings, supa_dsn: str, storage_server: StorageServer,
                                                fault_proxy: FaultProxy, bucket_name: str, scrape_small: Path,
                                                tmp_path: Path) -> None:
    report, rejects = tmp_path / "report.json", tmp_path / "rejects.jsonl"
    key = storage_server.key
    env = {**os.environ, "SUPABASE_URL": fault_proxy.url, "SUPABASE_SERVICE_KEY": key, "SUPABASE_DB_URL": supa_dsn}
    args = [sys.executable, "-m", "loader", "load", "--backend", "supabase", "--states-dir", str(scrape_small),
            "--tag", "t", "--bucket", bucket_name, "--manifest-dir", str(tmp_path / "m"), "--report-json",
            str(report), "--rejects", str(rejects), "--debug-log"]
    ok = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
    assert ok.returncode == 0, ok.stderr
    # The key refused by the real server (signed with another secret): the error path must not print it either.
    header, claims, _ = key.split(".")
    forged = f"{header}.{claims}.{'A' * 43}"
    bad = subprocess.run([*args, "--full"], capture_output=True, text=True, timeout=120,
                         env={**env, "SUPABASE_SERVICE_KEY": forged})
    assert bad.returncode == 3 and "cannot" in bad.stderr and "bucket" in bad.stderr
    outputs = [ok.stdout, ok.stderr, bad.stdout, bad.stderr, report.read_text(), rejects.read_text()]
    outputs += [manifest_text(p) for p in (tmp_path / "m").glob("*.parquet")]
    assert outputs[-1]  # the manifest was written, and is checked too
    assert not any(secret in text for text in outputs for secret in (key, forged, claims))


def test_missing_credentials_are_a_usage_error(supa_dsn: str, scrape_small: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPABASE")}
    res = subprocess.run([sys.executable, "-m", "loader", "load", "--backend", "supabase", "--states-dir",
                          str(scrape_small), "--tag", "t", "--dsn", supa_dsn], capture_output=True, text=True,
                         env=env, timeout=60)
    assert res.returncode == 2
    assert "SUPABASE_URL" in res.stderr and "SUPABASE_SERVICE_KEY" in res.stderr
