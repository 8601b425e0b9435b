"""Loads of different tags started at the same moment on an empty database (issue 15): the first
ones used to race to create the schema (23505 on pg_type) and fail with exit 3. Each must commit,
exactly, on a PostgreSQL server and on a fresh embedded data folder alike."""

from __future__ import annotations

import subprocess
from pathlib import Path

from loader.db import embedded
from tests.conftest import query
from tests.e2e.test_cli import _command, _env
from tests.integration import test_embedded
from tests.scrape import Scrape, document, license_, png

LOADS = 8
data_dir = test_embedded.data_dir  # the fixture: a data folder not made yet, cleaned up after


def _scrapes(tmp: Path) -> list[Scrape]:
    """One scrape per tag, every one sharing a screenshot with the others, and one of its own."""
    shared = png(filler=b"shared by every tag")
    scrapes = []
    for i in range(LOADS):
        scrape = Scrape(tmp / f"scrape{i}")
        scrape.raw("2025-08-03/PA/Belmar_01.png", shared)
        scrape.json("2025-08-03/PA/Belmar_01_parse.json",
                    document(licenses=[license_(license_number=f"PA{i}"), license_(license_number=f"PB{i}")]))
        scrape.search(f"2025-08-03/FL/Own_{i}", document(name=f"Own{i}", state="FL"))
        scrapes.append(scrape)
    return scrapes


def _start_all(tmp: Path, backend: list[str]) -> list[subprocess.CompletedProcess[str]]:
    procs = [subprocess.Popen([*_command(), "load", *backend, "--states-dir", str(s.root), "--tag", f"tag{i}",
                               "--image-dir", str(tmp / "images"), "--manifest-dir", str(tmp / "manifests"),
                               "--max-workers", "1"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
             for i, s in enumerate(_scrapes(tmp))]
    done = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        done.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return done


def _assert_exact(dsn: str, done: list[subprocess.CompletedProcess[str]]) -> None:
    assert [d.returncode for d in done] == [0] * LOADS, "\n".join(d.stderr[-600:] for d in done if d.returncode)
    assert query(dsn, "SELECT d.tag, count(*) FROM search_results r JOIN datasets d ON d.id = r.dataset_id "
                      "GROUP BY d.tag ORDER BY d.tag") == [(f"tag{i}", 3) for i in range(LOADS)]
    assert query(dsn, "SELECT count(*) FROM image_assets") == [(LOADS + 1,)]
    assert query(dsn, "SELECT count(*) FROM load_runs WHERE status = 'ok'") == [(LOADS,)]


def test_concurrent_first_loads_on_an_empty_postgresql_database(dsn: str, tmp_path: Path) -> None:
    done = _start_all(tmp_path, ["--backend", "postgresql", "--dsn", dsn])
    _assert_exact(dsn, done)


def test_concurrent_first_loads_on_a_fresh_embedded_data_folder(data_dir: Path, tmp_path: Path) -> None:
    backend = ["--backend", "embedded", "--data-dir", str(data_dir), "--database", "pharmchecker",
               "--keep-server"]
    done = _start_all(tmp_path, backend)
    server = embedded.start(data_dir)  # joins the server the loads left running
    try:
        _assert_exact(server.dsn("pharmchecker"), done)
    finally:
        server.release(stop=True)
