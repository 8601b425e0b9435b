"""`pharmload drop`, `gc` and `status` as a user runs them: the confirmation on a terminal, --yes for
scripts, exit codes, and what they print."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest

from loader.db.merge import LOCK_NAMESPACE
from tests.conftest import query
from tests.scrape import Scrape
from tests.support.lifecycle import folder, local_objects, shot


class Pharmload:
    """The command with this test's database, image store and manifests."""

    def __init__(self, dsn: str, tmp: Path) -> None:
        self.dsn, self.tmp = dsn, tmp

    def flags(self, command: str) -> list[str]:
        extra = {"load": ["--image-dir", str(self.images), "--manifest-dir", str(self.tmp / "manifests")],
                 "drop": ["--manifest-dir", str(self.tmp / "manifests")],
                 "gc": ["--image-dir", str(self.images)], "status": ["--image-dir", str(self.images)]}
        return [command, "--backend", "postgresql", "--dsn", self.dsn, *extra[command]]

    @property
    def images(self) -> Path:
        return self.tmp / "images"

    def __call__(self, command: str, *args: str, answer: bytes | None = None) -> subprocess.CompletedProcess[str]:
        """Run it; with answer, on a terminal (a pty as stdin) that types answer."""
        argv = [sys.executable, "-m", "loader", *self.flags(command), *args]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PHARMLOAD_", "PG"))}
        if answer is None:
            return subprocess.run(argv, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=120)
        main, terminal = pty.openpty()
        try:
            os.write(main, answer)
            return subprocess.run(argv, capture_output=True, text=True, env=env, stdin=terminal, timeout=120)
        finally:
            os.close(main)
            os.close(terminal)


@pytest.fixture
def cli(dsn: str, tmp_path: Path, scrape: Scrape) -> Pharmload:
    """Tags A (screenshots 0-3) and B (2-5) loaded."""
    run = Pharmload(dsn, tmp_path)
    for tag, shots in (("A", range(4)), ("B", range(2, 6))):
        assert run("load", "--states-dir", str(folder(scrape, tag.lower(), shots)), "--tag", tag).returncode == 0
    return run


def tags(dsn: str) -> list[tuple[Any, ...]]:
    return query(dsn, "SELECT tag FROM datasets ORDER BY 1")


def test_drop_asks_on_a_terminal_and_drops_when_the_tag_is_typed(cli: Pharmload, dsn: str) -> None:
    kept = cli("drop", "--tag", "A", answer=b"yes\n")
    assert kept.returncode == 0, kept.stderr
    assert "tag 'A' (dataset 1): 4 rows of search_results, 1 of load_runs" in kept.stdout
    assert "Dropping is final" in kept.stdout and "Type the tag (A) to drop it" in kept.stdout
    assert "not confirmed: nothing was removed" in kept.stdout and tags(dsn) == [("A",), ("B",)]

    dropped = cli("drop", "--tag", "A", answer=b"A\n")
    assert dropped.returncode == 0, dropped.stderr
    assert "dropped tag 'A': rows removed: search_results 4, load_runs 1, datasets 1; manifests removed: 1" \
        in dropped.stdout
    assert tags(dsn) == [("B",)]


def test_drop_without_a_terminal_needs_yes(cli: Pharmload, dsn: str, tmp_path: Path) -> None:
    refused = cli("drop", "--tag", "A")
    assert refused.returncode == 2
    assert "pass --yes" in refused.stderr and tags(dsn) == [("A",), ("B",)]

    dry = cli("drop", "--tag", "A", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "4 rows of search_results" in dry.stdout and "dry run: nothing was removed" in dry.stdout
    assert "screenshots: 4 referenced, 2 of them by no other dataset" in dry.stdout
    assert tags(dsn) == [("A",), ("B",)]

    report = tmp_path / "drop.json"
    done = cli("drop", "--tag", "A", "--yes", "--report-json", str(report))
    assert done.returncode == 0, done.stderr
    assert "Type the tag" not in done.stdout and tags(dsn) == [("B",)]
    data = orjson.loads(report.read_bytes())
    assert data["status"] == "dropped" and data["removed"]["search_results"] == 4
    assert data["plan"]["manifests"][0]["states_dir"].endswith("/scrape/a")


def test_drop_refusals_exit_3_with_the_reason(cli: Pharmload, dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as load:
        load.execute("SELECT pg_advisory_lock(%s, hashtext('A'))", (LOCK_NAMESPACE,))
        busy = cli("drop", "--tag", "A", "--yes", "--lock-wait", "fail")
    assert busy.returncode == 3 and "a load of tag 'A' is running" in busy.stderr
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE TABLE reviews (result_id bigint REFERENCES search_results (id))")
        conn.execute("INSERT INTO reviews SELECT min(id) FROM search_results")
    used = cli("drop", "--tag", "A", "--yes")
    assert used.returncode == 3
    assert "1 rows of table public.reviews refer to rows of tag 'A'" in used.stderr
    assert tags(dsn) == [("A",), ("B",)]


def test_gc_and_status_report_what_they_see(cli: Pharmload, dsn: str, tmp_path: Path) -> None:
    assert cli("drop", "--tag", "A", "--yes").returncode == 0
    status = cli("status")
    assert status.returncode == 0, status.stderr
    assert f"image store (folder {cli.images}): 6 objects" in status.stdout
    assert "screenshot rows: 6; referenced by no search result: 2 (`pharmload gc` removes them); pending upload: 0" \
        in status.stdout

    dry = cli("gc", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    size = len(shot(0)) + len(shot(1))
    assert (f"would remove 2 screenshot rows no search result references, 2 store objects ({size / 1024:.1f} KB)"
            in dry.stdout)
    assert len(local_objects(cli.images)) == 6

    report = tmp_path / "gc.json"
    done = cli("gc", "--report-json", str(report))
    assert done.returncode == 0, done.stderr
    assert f"removed 2 screenshot rows no search result references, 2 store objects ({size / 1024:.1f} KB)" \
        in done.stdout
    data = orjson.loads(report.read_bytes())
    assert (data["status"], data["rows_removed"], data["objects_removed"], data["bytes_removed"]) == ("ok", 2, 2, size)
    assert len(local_objects(cli.images)) == 4

    report = tmp_path / "status.json"
    assert cli("status", "--report-json", str(report)).returncode == 0
    data = orjson.loads(report.read_bytes())
    assert [d["tag"] for d in data["datasets"]] == ["B"]
    assert data["images"] == {"store": {"name": f"folder {cli.images}", "objects": 4,
                                        "bytes": sum(len(shot(i)) for i in range(2, 6))},
                              "rows": 4, "unreferenced": 0, "pending": 0}
