"""Operations: --verify-writes finds real differences, metrics for node_exporter, load history, progress."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from loader.run import pipeline
from loader.settings import Settings
from loader.stores.local import storage_path
from tests.conftest import query
from tests.scrape import Scrape, document, license_


def tree(scrape: Scrape) -> None:
    scrape.search("2025-08-03/PA/Belmar_01", document(licenses=[license_(), license_(license_number="NP2")]))
    scrape.search("2025-08-03/FL/Beaker_01", document(name="Beaker", state="FL", licenses=[]))
    scrape.search("2025-08-04/PA/Belmar_01", document(ts="2025-08-04T10:00:00",
                                                      licenses=[license_(license_status="Expired")]))


def cli(settings: Settings, *extra: str) -> subprocess.CompletedProcess[str]:
    """The command, its output decoded without newline translation (a lone \r stays a \r)."""
    args = [sys.executable, "-m", "loader", "--backend", "postgresql", "--dsn", settings.dsn, *extra]
    if extra[0] == "load":  # the flags only a load takes
        args += ["--image-dir", str(settings.image_dir), "--manifest-dir", str(settings.manifest_dir)]
    res = subprocess.run(args, capture_output=True, timeout=120, env=dict(os.environ))
    return subprocess.CompletedProcess(res.args, res.returncode, res.stdout.decode(), res.stderr.decode())


def test_verify_writes_passes_on_a_clean_load(settings: Settings, scrape: Scrape) -> None:
    tree(scrape)
    rep = pipeline.run(settings.replace(verify_writes="deep"))
    assert rep.verify["result"] == "ok"
    assert rep.verify["checked"] == 3 and rep.verify["images_checked"] == 3


def test_verify_writes_finds_a_value_the_database_changed(settings: Settings, scrape: Scrape, dsn: str) -> None:
    tree(scrape)
    pipeline.run(settings.replace(tag="warm-up"))  # creates the schema, so the trigger can be attached
    with psycopg.connect(dsn) as conn:
        conn.execute("""CREATE FUNCTION meddle() RETURNS trigger LANGUAGE plpgsql AS $$
                        BEGIN IF NEW.license_number = 'NP2' THEN NEW.city := 'ELSEWHERE'; END IF; RETURN NEW; END $$""")
        conn.execute("CREATE TRIGGER meddle BEFORE INSERT OR UPDATE ON search_results "
                     "FOR EACH ROW EXECUTE FUNCTION meddle()")
    res = cli(settings, "load", "--states-dir", str(scrape.root), "--tag", "checked", "--verify-writes")
    assert res.returncode == 4, res.stderr
    assert "values differ" in res.stderr and "NP2" in res.stderr
    assert query(dsn, "SELECT count(*) FROM search_results r JOIN datasets d ON d.id = r.dataset_id "
                      "WHERE d.tag = 'checked'") == [(3,)]  # loaded all the same


def test_verify_writes_finds_a_screenshot_the_store_lacks(settings: Settings, scrape: Scrape) -> None:
    tree(scrape)
    shot = (scrape.root / "2025-08-03/FL/Beaker_01.png").read_bytes()
    import hashlib

    bad = settings.image_dir / storage_path(hashlib.sha256(shot).hexdigest())
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"truncated")  # a damaged file already sits where that screenshot belongs
    rep = pipeline.run(settings.replace(verify_writes="on"))
    assert rep.verify["result"] == "mismatch"
    assert any("stored size 9" in m["problem"] for m in rep.verify["mismatches"])


def test_metrics_file_keeps_other_tags_and_the_last_success(settings: Settings, scrape: Scrape,
                                                            tmp_path: Path) -> None:
    tree(scrape)
    metrics = tmp_path / "textfile" / "pharmload.prom"
    pipeline.run(settings.replace(metrics_file=metrics))
    pipeline.run(settings.replace(metrics_file=metrics, tag='other "tag"'))
    text = metrics.read_text()
    assert 'pharmload_last_run_success{tag="test-tag"} 1.0' in text
    assert 'pharmload_last_run_success{tag="other \\"tag\\""} 1.0' in text
    assert 'pharmload_files{tag="test-tag",outcome="loaded"} 3.0' in text
    assert 'pharmload_rows{tag="test-tag",change="inserted"} 3.0' in text
    assert re.search(r'pharmload_phase_duration_seconds\{tag="test-tag",phase="merge"\} [0-9.e-]+', text)
    success = re.search(r'pharmload_last_success_timestamp_seconds\{tag="test-tag"\} (\S+)', text)
    assert success

    with pytest.raises(Exception):  # noqa: B017 - any failure: the database is unreachable
        pipeline.run(settings.replace(metrics_file=metrics, dsn="host=/nonexistent dbname=x", retries=1))
    after = metrics.read_text()
    assert 'pharmload_last_run_success{tag="test-tag"} 0.0' in after
    assert f'pharmload_last_success_timestamp_seconds{{tag="test-tag"}} {success.group(1)}' in after
    assert 'pharmload_last_run_success{tag="other \\"tag\\""} 1.0' in after
    for line in after.splitlines():  # every line is valid exposition format
        assert line.startswith("#") or re.fullmatch(r'\w+\{[^}]*\} -?[0-9.e+-]+', line), line


def test_runs_and_status_show_the_history(settings: Settings, scrape: Scrape) -> None:
    tree(scrape)
    pipeline.run(settings)
    pipeline.run(settings.replace(full=True))
    pipeline.run(settings.replace(tag="second"))
    runs = cli(settings, "runs", "--tag", "test-tag")
    assert runs.returncode == 0, runs.stderr
    lines = runs.stdout.strip().splitlines()
    assert len(lines) == 3 and "second" not in runs.stdout  # header + two loads of test-tag
    assert re.search(r"test-tag\s+ok\s+3\s+0\s+0\s+0\s+0\s+3", lines[1])  # newest first: the --full re-run
    assert re.search(r"test-tag\s+ok\s+3\s+0\s+0\s+3\s+0\s+0", lines[2])
    status = cli(settings, "status")
    assert "test-tag" in status.stdout and "second" in status.stdout and "3 inserted" in status.stdout


def test_plain_log_lines_when_not_a_terminal_and_live_progress_when_asked(settings: Settings,
                                                                          scrape: Scrape) -> None:
    tree(scrape)
    plain = cli(settings, "load", "--states-dir", str(scrape.root), "--tag", "p1")
    stamped = [line for line in plain.stderr.splitlines() if re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", line)]
    assert [line.split(" INFO ")[1].split(":")[0] for line in stamped] == ["plan", "parse", "merge", "commit"]
    assert "\r" not in plain.stderr and "Rows: 3 inserted" in plain.stderr
    live = cli(settings, "load", "--states-dir", str(scrape.root), "--tag", "p2", "--progress", "on")
    assert "\rparse: 3/3 files" in live.stderr
