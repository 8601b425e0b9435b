"""deploy/cron/pharmload-cron.sh, run as cron would run it, against the test PostgreSQL server."""

from __future__ import annotations

import fcntl
import os
import re
import subprocess
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from loader.db.merge import LOCK_NAMESPACE
from tests.conftest import query
from tests.scrape import Scrape, document, license_
from tests.support.lifecycle import folder, keys, local_objects

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "cron" / "pharmload-cron.sh"
PHARMLOAD = ROOT / ".venv" / "bin" / "pharmload"
STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2} pharmload-cron\[\d+\] ")
DAYS = ("2025-08-03", "2025-08-04", "2025-08-05")


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    log: str
    seconds: float

    @property
    def wrapper_lines(self) -> list[str]:
        return [line for line in self.log.splitlines() if "pharmload-cron[" in line]


@dataclass
class Cron:
    """The wrapper with this test's database, scrape tree, log, lock, image store and manifests."""

    dsn: str
    tmp: Path
    scrape: Scrape

    @property
    def log(self) -> Path:
        return self.tmp / "log" / "pharmload.log"

    @property
    def lock(self) -> Path:
        return self.tmp / "cron.lock"

    def base_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("PHARMLOAD_", "PG", "SUPABASE_", "SCRAPES_")) and k != "DATABASE_URL"}
        env.update({
            "SCRAPES_ROOT": str(self.scrape.root),
            "PHARMLOAD_HOME": str(ROOT),
            "PHARMLOAD_BACKEND": "postgresql",
            "PHARMLOAD_DSN": self.dsn,
            "PHARMLOAD_IMAGE_DIR": str(self.tmp / "images"),
            "PHARMLOAD_MANIFEST_DIR": str(self.tmp / "manifests"),
            "PHARMLOAD_DATA_DIR": str(self.tmp / "unused-pgdata"),
            "PHARMLOAD_MAX_WORKERS": "1",
            "PHARMLOAD_LOG": str(self.log),
            "PHARMLOAD_LOCK_FILE": str(self.lock),
        })
        return env

    def run(self, **changes: str | None) -> Run:
        """The wrapper with the base environment, plus changes (None removes a variable)."""
        env = self.base_env()
        for key, value in changes.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        before = self.log.read_text() if self.log.exists() else ""
        start = time.monotonic()
        proc = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=60,
                              check=False)
        seconds = time.monotonic() - start
        log = self.log.read_text()[len(before):] if self.log.exists() else ""
        return Run(proc.returncode, proc.stdout, proc.stderr, log, seconds)


@pytest.fixture
def cron(dsn: str, tmp_path: Path, scrape: Scrape) -> Cron:
    assert PHARMLOAD.exists(), f"{PHARMLOAD} is missing: run 'make install'"
    return Cron(dsn=dsn, tmp=tmp_path, scrape=scrape)


def _days(scrape: Scrape, bad_day: str | None = None) -> None:
    """Three day folders: the first with one search, the later ones with two (three rows), plus noise."""
    for i, day in enumerate(DAYS):
        ts = f"{day}T10:00:00"
        scrape.search(f"{day}/PA/Belmar_01", document(ts=ts, licenses=[license_(), license_(license_number="X1")]))
        if i:
            scrape.search(f"{day}/FL/Belmar_01", document(state="FL", ts=ts))
    if bad_day:
        scrape.raw(f"{bad_day}/TX/Broken_parse.json", b'{"metadata": ')
    # Not day folders: never loaded, even when named to sort after the days.
    scrape.search("latest/PA/Belmar_01", document(ts="2025-08-09T10:00:00"))
    scrape.search("2025-08-09.partial/PA/Belmar_01", document(ts="2025-08-09T10:00:00"))
    scrape.raw("2025-08-10", b"a file, not a folder")


def _tags(dsn: str) -> list[tuple[Any, ...]]:
    return query(dsn, "SELECT d.tag, count(r.id) FROM datasets d LEFT JOIN search_results r ON r.dataset_id = d.id "
                      "GROUP BY d.tag ORDER BY d.tag")


def _tables(dsn: str) -> list[tuple[Any, ...]]:
    return query(dsn, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")


def test_date_mode_loads_the_newest_day_as_its_own_tag(cron: Cron, dsn: str) -> None:
    _days(cron.scrape)
    res = cron.run(PHARMLOAD_TAG_PREFIX="states-", PHARMLOAD_HOME=None)  # PHARMLOAD_HOME: from the script's place
    assert res.code == 0, res.log + res.stderr
    assert _tags(dsn) == [("states-2025-08-05", 3)]
    assert (res.stdout, res.stderr) == ("", "")  # silent on success: cron mails nothing

    lines = res.log.splitlines()
    assert STAMP.match(lines[0]) and STAMP.match(lines[-1])
    assert all(STAMP.match(line) for line in res.wrapper_lines)
    assert "cron run started: mode date, newest 1, tag prefix 'states-'" in lines[0]
    assert f"pharmload {PHARMLOAD}" in lines[0]
    assert f"load 1/1: tag 'states-2025-08-05' from {cron.scrape.root}/2025-08-05" in res.log
    assert "pharmload OK: tag 'states-2025-08-05'" in res.log  # pharmload's summary, appended
    assert "Files: 2 found, 2 loaded, 0 rejected, 0 skipped" in res.log
    assert "load 1/1 finished: tag 'states-2025-08-05' exit 0 (ok)" in res.log
    assert lines[-1].endswith("cron run finished: exit 0")


def test_date_mode_newest_two_loads_two_tags_oldest_first(cron: Cron, dsn: str) -> None:
    _days(cron.scrape)
    res = cron.run(PHARMLOAD_NEWEST="2")
    assert res.code == 0, res.log
    assert _tags(dsn) == [("2025-08-04", 3), ("2025-08-05", 3)]  # no prefix by default
    said = [re.sub(r" in \d+s$", "", line.split("] ", 1)[1]) for line in res.wrapper_lines]
    loads = [line for line in said if line.startswith("load ")]
    assert loads == [f"load 1/2: tag '2025-08-04' from {cron.scrape.root}/2025-08-04",
                     "load 1/2 finished: tag '2025-08-04' exit 0 (ok)",
                     f"load 2/2: tag '2025-08-05' from {cron.scrape.root}/2025-08-05",
                     "load 2/2 finished: tag '2025-08-05' exit 0 (ok)"]
    assert query(dsn, "SELECT count(*) FROM load_runs") == [(2,)]


def test_fixed_mode_loads_the_whole_tree_into_one_tag_incrementally(cron: Cron, dsn: str) -> None:
    _days(cron.scrape)
    env = {"PHARMLOAD_TAG_MODE": "fixed", "PHARMLOAD_TAG": "all-scrapes"}
    first = cron.run(**env)
    assert first.code == 0, first.log
    # Every *_parse.json below SCRAPES_ROOT, day folder or not: 2 + 2 + 2 (latest/, .partial/) searches
    # over (PA Belmar NP002169, PA Belmar X1, FL Belmar NP002169), the newest search of each key winning.
    assert _tags(dsn) == [("all-scrapes", 3)]
    assert "cron run started: mode fixed, tag 'all-scrapes'" in first.log
    assert "Files: 7 found, 7 loaded, 0 rejected, 0 skipped" in first.log

    cron.scrape.search("2025-08-06/NY/Belmar_01", document(state="NY", ts="2025-08-06T10:00:00"))
    second = cron.run(**env)
    assert second.code == 0, second.log
    assert "Files: 8 found, 1 loaded, 0 rejected, 7 skipped (unchanged)" in second.log
    assert _tags(dsn) == [("all-scrapes", 4)]
    assert query(dsn, "SELECT files_skipped, files_loaded FROM load_runs ORDER BY id") == [(0, 7), (7, 1)]
    assert first.log in cron.log.read_text()  # appended, never truncated


def test_an_overlapping_start_exits_at_once_and_loads_nothing(cron: Cron, dsn: str) -> None:
    _days(cron.scrape)
    with cron.lock.open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        res = cron.run()
    assert res.code == 0, res.log
    assert res.seconds < 5
    [line] = res.log.splitlines()
    assert STAMP.match(line)
    assert line.endswith(f"another pharmload cron run is still active (lock {cron.lock}); this start exits")
    assert _tables(dsn) == []


def test_another_load_of_the_tag_elsewhere_fails_at_once_instead_of_waiting(cron: Cron, dsn: str) -> None:
    """Another host's cron (another flock) loading the same tag: pharmload's advisory lock, --lock-wait fail."""
    _days(cron.scrape)
    with psycopg.connect(dsn, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (LOCK_NAMESPACE, "2025-08-05"))
        res = cron.run()
    assert res.code == 3, res.log
    assert res.seconds < 10
    assert "another load into tag '2025-08-05' is running" in res.log
    assert "load 1/1 finished: tag '2025-08-05' exit 3 (load failed, database unchanged)" in res.log
    assert res.log.splitlines()[-1].endswith("cron run finished: exit 3")
    assert "cron run finished: exit 3" in res.stderr  # for cron to mail


def test_rejects_exit_1_as_the_worst_of_the_run(cron: Cron, dsn: str) -> None:
    _days(cron.scrape, bad_day="2025-08-04")
    res = cron.run(PHARMLOAD_NEWEST="2")
    assert res.code == 1, res.log
    assert "load 1/2 finished: tag '2025-08-04' exit 1 (loaded, some files rejected)" in res.log
    assert "load 2/2 finished: tag '2025-08-05' exit 0 (ok)" in res.log
    assert "invalid_json 1" in res.log
    assert res.log.splitlines()[-1].endswith("cron run finished: exit 1")
    assert _tags(dsn) == [("2025-08-04", 3), ("2025-08-05", 3)]
    assert res.stderr == ""  # rejects are in the log, not mailed


@pytest.mark.parametrize(("changes", "message"), [
    pytest.param({"SCRAPES_ROOT": "missing"}, "SCRAPES_ROOT {tmp}/missing: not a folder", id="missing-root"),
    pytest.param({"SCRAPES_ROOT": None}, "SCRAPES_ROOT is not set", id="unset-root"),
    pytest.param({"SCRAPES_ROOT": "empty"}, "SCRAPES_ROOT {tmp}/empty has no day folder named YYYY-MM-DD",
                 id="no-day-folders"),
    pytest.param({"PHARMLOAD_TAG_MODE": "weekly"}, "PHARMLOAD_TAG_MODE 'weekly': use 'date' or 'fixed'",
                 id="bad-mode"),
    pytest.param({"PHARMLOAD_TAG_MODE": "fixed"}, "PHARMLOAD_TAG_MODE=fixed needs PHARMLOAD_TAG", id="fixed-no-tag"),
    pytest.param({"PHARMLOAD_NEWEST": "0"}, "PHARMLOAD_NEWEST '0': not a positive whole number", id="bad-newest"),
    pytest.param({"PHARMLOAD_KEEP_DAYS": "a week"}, "PHARMLOAD_KEEP_DAYS 'a week': not a positive whole number",
                 id="bad-keep-days"),
    pytest.param({"PHARMLOAD_TAG_MODE": "fixed", "PHARMLOAD_TAG": "all", "PHARMLOAD_KEEP_DAYS": "30"},
                 "PHARMLOAD_KEEP_DAYS works in date mode only", id="keep-days-fixed"),
    pytest.param({"PHARMLOAD_HOME": "nohome"}, "pharmload not found at {tmp}/nohome/.venv/bin/pharmload",
                 id="no-pharmload"),
])
def test_configuration_errors_exit_2_with_a_clear_line(cron: Cron, dsn: str, changes: dict[str, str | None],
                                                       message: str) -> None:
    _days(cron.scrape)
    (cron.tmp / "empty").mkdir()
    paths = {k: str(cron.tmp / v) if v and k in ("SCRAPES_ROOT", "PHARMLOAD_HOME") else v for k, v in changes.items()}
    res = cron.run(**paths)
    assert res.code == 2, res.log
    expected = message.format(tmp=cron.tmp)
    [first, last] = res.log.splitlines()
    assert STAMP.match(first) and f"configuration error: {expected}" in first and first.endswith("; nothing loaded")
    assert last.endswith("cron run finished: exit 2")
    assert expected in res.stderr
    assert _tables(dsn) == []


def test_an_unwritable_log_exits_2_on_stderr(cron: Cron, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    res = cron.run(PHARMLOAD_LOG=str(tmp_path / "afile" / "pharmload.log"))
    assert res.code == 2
    assert f"cannot write the log file {tmp_path}/afile/pharmload.log" in res.stderr


def test_crontab_calls_the_wrapper_and_the_env_example_names_every_variable() -> None:
    crontab = (SCRIPT.parent / "crontab").read_text()
    [line] = [ln for ln in crontab.splitlines() if ln.strip() and not ln.startswith("#") and "=" not in ln.split()[0]]
    fields = line.split(None, 6)
    assert fields[5] == "root"  # /etc/cron.d format: the user field
    assert "/etc/pharmload/pharmload.env" in fields[6] and "deploy/cron/pharmload-cron.sh" in fields[6]
    assert "%" not in line  # cron would turn it into a newline
    example = (SCRIPT.parent / "pharmload.env.example").read_text()
    for name in sorted(set(re.findall(r"\$\{?((?:PHARMLOAD|SCRAPES)_[A-Z_]+)", SCRIPT.read_text()))):
        assert name in example, name


def _recent_days(cron: Cron) -> list[str]:
    """Day folders 10, 3 and 1 days before today, sharing screenshots with their neighbours."""
    days = [(date.today() - timedelta(days=n)).isoformat() for n in (10, 3, 1)]
    for day, shots in zip(days, (range(4), range(2, 6), range(4, 8)), strict=True):
        folder(cron.scrape, day, shots, ts=f"{day}T10:00:00")
    return days


def test_retention_drops_old_days_after_the_loads_then_collects_their_screenshots(cron: Cron, dsn: str) -> None:
    old, recent, newest = _recent_days(cron)
    manual = subprocess.run([str(PHARMLOAD), "load", "--states-dir", str(cron.scrape.root / recent), "--tag",
                             "states-2001-01-01x", "--max-workers", "1"], env=cron.base_env(), capture_output=True,
                            text=True, timeout=120)
    assert manual.returncode == 0, manual.stderr  # a tag this cron did not make: never dropped
    env = {"PHARMLOAD_TAG_PREFIX": "states-", "PHARMLOAD_KEEP_DAYS": "5"}

    first = cron.run(PHARMLOAD_NEWEST="3", **env)
    assert first.code == 0, first.log
    assert f"retention: keeping tag 'states-{old}', which this run loaded" in first.log
    assert [t for t, _ in _tags(dsn)] == ["states-2001-01-01x", f"states-{old}", f"states-{recent}",
                                          f"states-{newest}"]

    second = cron.run(PHARMLOAD_NEWEST="1", **env)
    assert second.code == 0, second.log
    cutoff = (date.today() - timedelta(days=5)).isoformat()
    said = [re.sub(r" in \d+s$", "", line.split("] ", 1)[1]) for line in second.wrapper_lines]
    assert [line for line in said if line.startswith(("load ", "retention: "))] == [
        f"load 1/1: tag 'states-{newest}' from {cron.scrape.root}/{newest}",
        f"load 1/1 finished: tag 'states-{newest}' exit 0 (ok)",
        f"retention: list the tags (PHARMLOAD_KEEP_DAYS=5: drop days before {cutoff})",
        f"retention: list the tags (PHARMLOAD_KEEP_DAYS=5: drop days before {cutoff}) finished: exit 0 (ok)",
        f"retention: drop 1/1: tag 'states-{old}'",
        f"retention: drop 1/1: tag 'states-{old}' finished: exit 0 (ok)",
        "retention: gc (1 tags dropped)",
        "retention: gc (1 tags dropped) finished: exit 0 (ok)",
    ]
    assert f"dropped tag 'states-{old}'" in second.log and "removed 2 screenshot rows" in second.log
    assert [t for t, _ in _tags(dsn)] == ["states-2001-01-01x", f"states-{recent}", f"states-{newest}"]
    assert set(local_objects(cron.tmp / "images")) == keys(range(2, 8))  # 0 and 1 were the old day's only
    assert (second.stdout, second.stderr) == ("", "")


def test_a_failed_drop_is_alerted_and_stops_nothing_else(cron: Cron, dsn: str) -> None:
    old, _, newest = _recent_days(cron)
    assert cron.run(PHARMLOAD_NEWEST="3").code == 0
    with psycopg.connect(dsn) as conn:  # one of the old day's rows is held by a key without ON DELETE action
        conn.execute("CREATE TABLE reviews (result_id bigint REFERENCES search_results (id))")
        conn.execute("INSERT INTO reviews SELECT min(r.id) FROM search_results r JOIN datasets d "
                     "ON d.id = r.dataset_id WHERE d.tag = %s", (old,))
    cron.scrape.search(f"{newest}/FL/Late_01", document(name="Late", state="FL", ts=f"{newest}T12:00:00"))
    res = cron.run(PHARMLOAD_KEEP_DAYS="5")
    assert res.code == 3, res.log
    assert f"load 1/1 finished: tag '{newest}' exit 0 (ok)" in res.log
    assert f"retention: drop 1/1: tag '{old}' finished: exit 3 (failed, see the lines above)" in res.log
    assert "1 rows of table public.reviews refer to rows of tag" in res.log
    assert "retention: gc (1 tags dropped) finished: exit 0 (ok)" in res.log
    assert f"drop 1/1: tag '{old}' finished: exit 3" in res.stderr  # mailed
    assert old in [t for t, _ in _tags(dsn)]
    assert query(dsn, "SELECT count(*) FROM search_results WHERE search_name = 'Late'") == [(1,)]
