"""The installed `pharmload` command, run as a subprocess against the test PostgreSQL server."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from loader.db.merge import LOCK_NAMESPACE
from tests.conftest import manifest_text, query
from tests.scrape import Scrape, document, license_

PASSWORD = "s3cr3t-XYZ"
UNREACHABLE = "postgresql://nouser@127.0.0.1:1/x"


def _command() -> list[str]:
    found = shutil.which("pharmload", path=str(Path(sys.executable).parent))
    assert found is not None, "the pharmload command is not installed in this environment"
    return [found]


def _env() -> dict[str, str]:
    """The environment without anything that would point pharmload somewhere else."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("PHARMLOAD_", "PG", "SUPABASE_")) and k != "DATABASE_URL"}


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


@dataclass
class Cli:
    """Runs the command with this test's DSN, image store, manifests and output files."""

    dsn: str
    tmp: Path
    scrape: Scrape

    @property
    def image_dir(self) -> Path:
        return self.tmp / "images"

    @property
    def rejects(self) -> Path:
        return self.tmp / "out" / "rejects.jsonl"

    @property
    def report(self) -> Path:
        return self.tmp / "out" / "report.json"

    def base(self, dsn: str | None = None) -> list[str]:
        """The database flags every command takes."""
        return ["--backend", "postgresql", "--dsn", dsn or self.dsn]

    def load_base(self, dsn: str | None = None) -> list[str]:
        """base() and the flags of a load's store, manifest and retries."""
        return [*self.base(dsn), "--image-dir", str(self.image_dir), "--manifest-dir", str(self.tmp / "manifests"),
                "--retry-delay", "0.01"]

    def load(self, *extra: str, dsn: str | None = None, tag: str | None = "cli-tag") -> list[str]:
        args = ["load", *self.load_base(dsn), "--states-dir", str(self.scrape.root), "--rejects", str(self.rejects),
                "--report-json", str(self.report)]
        return args + (["--tag", tag] if tag else []) + list(extra)

    def run(self, args: list[str], command: list[str] | None = None) -> Result:
        proc = subprocess.run([*(command or _command()), *args], capture_output=True, text=True, env=_env(),
                              timeout=120, check=False)
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def report_json(self) -> dict[str, Any]:
        data: dict[str, Any] = orjson.loads(self.report.read_bytes())
        return data

    def rejects_lines(self) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in self.rejects.read_bytes().splitlines()]


@pytest.fixture
def cli(dsn: str, tmp_path: Path, scrape: Scrape) -> Cli:
    return Cli(dsn=dsn, tmp=tmp_path, scrape=scrape)


def _tree(scrape: Scrape, bad: bool = False) -> None:
    scrape.search("2025-08-03/PA/Belmar_01", document(licenses=[license_(), license_(license_number="X1")]))
    scrape.search("2025-08-03/FL/Belmar_01", document(state="FL"))
    scrape.png("2025-08-03/FL/Belmar_table.png")
    if bad:
        scrape.raw("2025-08-03/TX/Broken_parse.json", b'{"metadata": ')


def _tables(dsn: str) -> list[tuple[Any, ...]]:
    return query(dsn, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")


def _store(image_dir: Path) -> list[Path]:
    return sorted(p for p in image_dir.rglob("*") if p.is_file()) if image_dir.exists() else []


def test_exit_0_when_everything_loaded(cli: Cli, dsn: str) -> None:
    _tree(cli.scrape)
    res = cli.run(cli.load())
    assert res.code == 0, res.stderr
    assert "pharmload OK" in res.stderr
    assert "Files: 2 found, 2 loaded, 0 rejected, 0 skipped" in res.stderr
    assert "Rows: 3 inserted, 0 updated" in res.stderr
    assert query(dsn, "SELECT count(*) FROM search_results") == [(3,)]
    assert len(_store(cli.image_dir)) == 2
    rep = cli.report_json()
    assert (rep["status"], rep["tag"], rep["files_found"], rep["files_loaded"], rep["rows_inserted"]) == (
        "ok", "cli-tag", 2, 2, 3)
    assert cli.rejects_lines() == []


def test_a_rerun_of_an_unchanged_tree_is_recorded_without_parsing(cli: Cli, dsn: str) -> None:
    _tree(cli.scrape, bad=True)
    assert cli.run(cli.load()).code == 1
    res = cli.run(cli.load())
    assert res.code == 1, res.stderr  # its reject still stands, and is reported again
    assert "unchanged since load" in res.stderr
    assert "Files: 3 found, 0 loaded, 1 rejected, 2 skipped" in res.stderr
    assert [line["reason"] for line in cli.rejects_lines()] == ["invalid_json"]
    rep = cli.report_json()
    assert rep["note"].startswith("tree unchanged since load") and "parse" not in rep["phases"]
    assert query(dsn, "SELECT files_seen, files_skipped, files_rejected FROM load_runs ORDER BY id") == [
        (3, 0, 1), (3, 2, 1)]


def test_a_rerun_against_a_database_restored_from_before_the_load_loads_it_again(cli: Cli, dsn: str) -> None:
    """The re-run's check and then the full load both run in the one db process: the check finds
    the sealed load missing and rolls back, and the pipeline reconciles and loads every file."""
    _tree(cli.scrape)
    assert cli.run(cli.load()).code == 0
    with psycopg.connect(dsn) as conn:
        conn.execute("DELETE FROM load_runs")
    res = cli.run(cli.load())
    assert res.code == 0, res.stderr
    assert "the database does not hold the manifest's last load; every file is parsed again" in res.stderr
    assert "Files: 2 found, 2 loaded, 0 rejected, 0 skipped" in res.stderr
    assert "Rows: 0 inserted, 0 updated, 3 unchanged" in res.stderr
    assert query(dsn, "SELECT files_seen, files_skipped, rows_unchanged FROM load_runs") == [(2, 0, 3)]


def test_exit_1_when_some_files_are_rejected(cli: Cli, dsn: str) -> None:
    _tree(cli.scrape, bad=True)
    res = cli.run(cli.load())
    assert res.code == 1, res.stderr
    assert "Files: 3 found, 2 loaded, 1 rejected" in res.stderr
    assert "invalid_json 1" in res.stderr
    assert query(dsn, "SELECT count(*) FROM search_results") == [(3,)]
    [line] = cli.rejects_lines()
    assert (line["file"], line["reason"]) == ("2025-08-03/TX/Broken_parse.json", "invalid_json")
    assert line["detail"]
    rep = cli.report_json()
    assert rep["files_rejected"] == 1 and rep["rejects_by_reason"] == {"invalid_json": 1}
    assert rep["rejects"] == [line]


def test_python_dash_m_loader_is_the_same_command(cli: Cli, dsn: str) -> None:
    _tree(cli.scrape, bad=True)
    res = cli.run(cli.load(), command=[sys.executable, "-m", "loader"])
    assert res.code == 1, res.stderr
    assert "Files: 3 found, 2 loaded, 1 rejected" in res.stderr
    assert query(dsn, "SELECT count(*) FROM search_results") == [(3,)]
    assert [line["reason"] for line in cli.rejects_lines()] == ["invalid_json"]
    usage = cli.run(cli.load(tag=None), command=[sys.executable, "-m", "loader"])
    assert usage.code == 2 and "--tag" in usage.stderr


@pytest.mark.parametrize(("change", "named"), [
    pytest.param({"tag": None}, ["--tag"], id="missing-tag"),
    pytest.param({"states": "does/not/exist"}, ["--states-dir", "does/not/exist"], id="missing-states-dir"),
    pytest.param({"extra": ["--source-timezone", "Mars/Olympus_Mons"]}, ["--source-timezone", "Mars/Olympus_Mons"],
                 id="bad-timezone"),
    pytest.param({"extra": ["--frobnicate"]}, ["--frobnicate"], id="unknown-flag"),
])
def test_exit_2_on_usage_errors(cli: Cli, dsn: str, change: dict[str, Any], named: list[str]) -> None:
    _tree(cli.scrape)
    args = cli.load(*change.get("extra", []), tag=change.get("tag", "cli-tag"))
    if "states" in change:
        args[args.index("--states-dir") + 1] = str(cli.tmp / change["states"])
    res = cli.run(args)
    assert res.code == 2, res.stderr
    for word in named:
        assert word in res.stderr
    assert _tables(dsn) == []
    assert not cli.report.exists() and not cli.image_dir.exists()


def test_exit_3_when_the_database_is_unreachable(cli: Cli, dsn: str) -> None:
    _tree(cli.scrape)
    res = cli.run(cli.load(dsn=UNREACHABLE))
    assert res.code == 3, res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("pharmload: ") and "127.0.0.1" in last
    assert _store(cli.image_dir) == []
    assert cli.report_json()["status"] == "failed"


def test_an_unreachable_database_is_one_message_even_with_chunks_queued_for_it(cli: Cli) -> None:
    # Several chunks parsed by worker processes: their COPYs queue behind the connection attempt,
    # and must give up with it rather than run without a connection (an internal error each).
    for i in range(12):
        cli.scrape.search(f"2025-08-03/PA/Pharmacy {i}_01", document(name=f"Pharmacy {i}"))
    res = cli.run(cli.load("--chunk-files", "2", "--max-workers", "2", "--retries", "1", dsn=UNREACHABLE))
    assert res.code == 3, res.stderr
    assert "Traceback" not in res.stderr and "Error" not in res.stderr, res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith("pharmload: ")
    assert _store(cli.image_dir) == []


def test_exit_3_when_the_load_fails_leaves_the_database_unchanged(cli: Cli, dsn: str) -> None:
    _tree(cli.scrape)
    assert cli.run(cli.load()).code == 0
    before = {t: query(dsn, f"SELECT * FROM {t} ORDER BY 1")  # noqa: S608
              for t in ("datasets", "search_results", "image_assets", "load_runs")}
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("ALTER TABLE search_results ADD CONSTRAINT no_renewals CHECK (license_status <> 'Renewed')")
    cli.scrape.search("2025-08-04/PA/Belmar_01", document(ts="2025-08-04T10:00:00", licenses=[
        license_(license_status="Renewed"), license_(license_number="NEW")]))
    res = cli.run(cli.load())
    assert res.code == 3, res.stderr
    assert "no_renewals" in res.stderr
    assert {t: query(dsn, f"SELECT * FROM {t} ORDER BY 1") for t in before} == before  # noqa: S608



@contextlib.contextmanager
def _waiting_for_the_lock(cli: Cli, dsn: str, *extra: str, env: dict[str, str] | None = None
                         ) -> Iterator[tuple[subprocess.Popen[str], psycopg.Connection[Any]]]:
    """A first load started while this test holds the tag's lock, yielded once it waits for it
    (with the connection holding the lock); the load runs in a session of its own."""
    with psycopg.connect(dsn, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (LOCK_NAMESPACE, "cli-tag"))
        proc = subprocess.Popen([*_command(), *cli.load(*extra)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env={**_env(), **(env or {})}, start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            while not holder.execute("SELECT 1 FROM pg_stat_activity WHERE application_name = 'pharmload' "
                                     "AND wait_event_type = 'Lock'").fetchone():
                assert proc.poll() is None and time.monotonic() < deadline, "the load never waited for the lock"
                time.sleep(0.05)
            yield proc, holder
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()


def _no_pharmload_session_within(holder: psycopg.Connection[Any], seconds: float) -> None:
    deadline = time.monotonic() + seconds  # a backend leaves pg_stat_activity a moment after its client
    while holder.execute("SELECT 1 FROM pg_stat_activity WHERE application_name = 'pharmload'").fetchone():
        assert time.monotonic() < deadline, "the load's connection outlived it, still waiting for the lock"
        time.sleep(0.05)


def _children(pid: int) -> list[int]:
    """The processes whose parent is pid."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            if int(stat.read_bytes().rsplit(b")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0] == b"Z"
    except FileNotFoundError:
        return True


def _state(dsn: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows (what a failed load must leave as it was)."""
    return {t: query(dsn, f"SELECT * FROM {t} ORDER BY 1") for (t,) in _tables(dsn)}  # noqa: S608


@pytest.mark.parametrize("load", ["first", "incremental"])
@pytest.mark.parametrize("to_whom", ["the loader", "its process group"])
@pytest.mark.parametrize(("sig", "code", "said"), [
    (signal.SIGINT, 130, "pharmload: interrupted; nothing was committed"),  # Ctrl-C, kill -INT
    (signal.SIGTERM, 143, "pharmload: terminated (SIGTERM); nothing was committed"),  # timeout(1), systemd
], ids=["SIGINT", "SIGTERM"])
def test_an_interrupt_while_waiting_for_the_tags_lock_exits_at_once(cli: Cli, dsn: str, load: str, to_whom: str,
                                                                     sig: signal.Signals, code: int, said: str) -> None:
    """A first load waits for the lock on its db lane while it parses, a later load before it parses;
    either way the wait runs in the db process. An interrupt, whether sent to the loader alone (kill
    -INT, kill -TERM) or to its whole process group (Ctrl-C in a terminal; systemd stopping a
    service), must end that wait at once, say so, and leave nothing behind: no session, no change to
    any table, no stored screenshot; and the report must not claim the load is still running."""
    _tree(cli.scrape)
    if load == "incremental":
        assert cli.run(cli.load()).code == 0
        cli.scrape.search("2025-08-04/PA/Belmar_01", document(ts="2025-08-04T10:00:00"))
        cli.scrape.png("2025-08-04/PA/Belmar_table.png")
    before, stored = _state(dsn), _store(cli.image_dir)
    with _waiting_for_the_lock(cli, dsn) as (proc, holder):
        if to_whom == "the loader":
            proc.send_signal(sig)
        else:
            os.killpg(proc.pid, sig)
        _, stderr = proc.communicate(timeout=15)
        assert proc.returncode == code, stderr
        assert said in stderr and "Traceback" not in stderr, stderr
        _no_pharmload_session_within(holder, 10)
    assert _state(dsn) == before  # on a first load: no table at all, as the lock comes before the schema
    assert _store(cli.image_dir) == stored
    assert cli.report_json()["status"] == "interrupted"


@pytest.mark.parametrize(("sig", "code", "said"), [
    (signal.SIGTERM, 143, "pharmload: terminated (SIGTERM); nothing was committed"),
    (signal.SIGINT, 130, "pharmload: interrupted; nothing was committed"),
], ids=["SIGTERM", "SIGINT"])
def test_a_signal_to_the_process_group_ends_a_load_with_workers_as_interrupted(
        cli: Cli, dsn: str, tmp_path: Path, sig: signal.Signals, code: int, said: str) -> None:
    """systemd or a container's end sends SIGTERM to every process of the group, a terminal's Ctrl-C
    SIGINT: the workers and the db process get it too, and what that breaks (a dead worker's pool,
    a cancelled statement) may reach the loader before its own signal does. The load must still end
    as interrupted (143 or 130), not hang on its pool, not fail (3) or crash with exit code 1, which
    reads "some files rejected", and leave no session, table, screenshot or folder in TMPDIR."""
    _tree(cli.scrape)
    tmp = tmp_path / "TMPDIR"
    tmp.mkdir()
    with _waiting_for_the_lock(cli, dsn, "--chunk-files", "1", "--max-workers", "2", env={"TMPDIR": str(tmp)}
                               ) as (proc, holder):
        deadline = time.monotonic() + 30  # the workers have parsed and hashed, the spill folder is there
        while not list(tmp.glob("pharmload-hashes-*")):
            assert time.monotonic() < deadline, "the load recorded no screenshot hash"
            time.sleep(0.05)
        assert len(_children(proc.pid)) >= 3, "the db process and two workers (and their forkserver)"
        os.killpg(proc.pid, sig)
        _, stderr = proc.communicate(timeout=30)
        assert proc.returncode == code, stderr
        assert said in stderr and "Traceback" not in stderr, stderr
        _no_pharmload_session_within(holder, 10)
    assert _tables(dsn) == []
    assert _store(cli.image_dir) == []
    assert list(tmp.iterdir()) == []  # neither our hash spill folder nor multiprocessing's pymp-*
    assert cli.report_json()["status"] == "interrupted"


def test_a_worker_killed_mid_load_fails_the_load_with_a_message(cli: Cli, dsn: str) -> None:
    """A worker killed from outside (the kernel's out-of-memory killer, kill -9) breaks the pool.
    The load fails (exit 3) with a message that says so, and commits nothing; it used to end in a
    traceback and Python's exit code 1, which reads "some files rejected" to cron."""
    for i in range(12):
        cli.scrape.search(f"2025-08-03/PA/Shop{i:02d}_01", document())
    with _waiting_for_the_lock(cli, dsn, "--chunk-files", "1", "--max-workers", "2") as (proc, holder):
        server = [p for p in _children(proc.pid) if b"forkserver" in Path(f"/proc/{p}/cmdline").read_bytes()]
        assert len(server) == 1, "a load of 12 one-file chunks runs a pool of workers"
        workers = _children(server[0])
        assert workers, "the pool's workers are forks of its forkserver"
        os.kill(workers[0], signal.SIGKILL)
        holder.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (LOCK_NAMESPACE, "cli-tag"))
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 3, stderr
        assert "a worker process ended unexpectedly" in stderr and "Traceback" not in stderr, stderr
    assert _tables(dsn) == []  # the first load's schema, too, was rolled back
    assert cli.report_json()["status"] == "failed"


def test_a_loader_killed_while_waiting_for_the_lock_leaves_no_session_behind(cli: Cli, dsn: str) -> None:
    """SIGKILL gives the loader no chance to clean up: its db process must notice, cancel the wait
    for the lock and go, rather than wait on and take the lock from the next load."""
    _tree(cli.scrape)
    with _waiting_for_the_lock(cli, dsn) as (proc, holder):
        children = _children(proc.pid)
        assert len(children) == 1, "a first load into PostgreSQL runs its transaction in one child process"
        proc.kill()
        proc.communicate(timeout=15)
        _no_pharmload_session_within(holder, 10)
        deadline = time.monotonic() + 10
        while not _gone(children[0]):
            assert time.monotonic() < deadline, "the db process outlived the loader"
            time.sleep(0.05)
    assert _tables(dsn) == []


def test_a_db_process_that_dies_is_replaced_by_a_retry_in_the_loader(cli: Cli, dsn: str) -> None:
    """The db process killed mid-load (say by the OOM killer): its transaction is rolled back, and
    the load is retried in the loader's own process and commits, once, with a warning saying so."""
    _tree(cli.scrape)
    with _waiting_for_the_lock(cli, dsn) as (proc, holder):
        (child,) = _children(proc.pid)
        os.kill(child, signal.SIGKILL)
        time.sleep(0.5)
        holder.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (LOCK_NAMESPACE, "cli-tag"))
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert "the database process ended unexpectedly" in stderr and "retry 1 of" in stderr
    assert query(dsn, "SELECT count(*) FROM search_results") == [(3,)]
    assert query(dsn, "SELECT count(*), sum(rows_inserted) FROM load_runs") == [(1, 3)]


OLD_SEARCH_RESULTS = """
CREATE TABLE search_results (
  id SERIAL PRIMARY KEY, dataset_id INT NOT NULL, search_name TEXT NOT NULL, search_state CHAR(2) NOT NULL,
  search_ts TIMESTAMP, license_number TEXT, license_status TEXT, license_name TEXT, license_type TEXT, address TEXT,
  city TEXT, state TEXT, zip TEXT, issue_date DATE, expiration_date DATE, result_status TEXT, meta JSONB, raw JSONB,
  created_at TIMESTAMP NOT NULL DEFAULT now(),
  CONSTRAINT unique_search_result UNIQUE(dataset_id, search_state, license_number))
"""


def test_exit_3_on_an_old_shape_database_says_to_run_init_db(cli: Cli, dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(OLD_SEARCH_RESULTS)
    _tree(cli.scrape)
    res = cli.run(cli.load())
    assert res.code == 3, res.stderr
    assert "init-db" in res.stderr
    assert _tables(dsn) == [("search_results",)]
    init = cli.run(["init-db", *cli.base()])
    assert init.code == 0, init.stderr
    assert "migrated" in init.stdout
    assert cli.run(cli.load()).code == 0
    assert query(dsn, "SELECT count(*) FROM search_results") == [(3,)]


def test_dry_run_writes_nothing(cli: Cli, dsn: str) -> None:
    _tree(cli.scrape, bad=True)
    assert cli.run(["init-db", *cli.base()]).code == 0
    res = cli.run(cli.load("--dry-run"))
    assert res.code == 1, res.stderr
    assert "DRY RUN" in res.stderr
    for table in ("datasets", "search_results", "image_assets", "load_runs"):
        assert query(dsn, f"SELECT count(*) FROM {table}") == [(0,)], table  # noqa: S608
    assert _store(cli.image_dir) == []
    assert cli.report_json()["files_loaded"] == 2
    # The dry run left no trace that would make the real load skip anything.
    real = cli.run(cli.load())
    assert real.code == 1, real.stderr
    assert "Files: 3 found, 2 loaded, 1 rejected, 0 skipped" in real.stderr
    assert query(dsn, "SELECT count(*) FROM search_results") == [(3,)]


def test_dry_run_on_an_empty_database_creates_no_table(cli: Cli, dsn: str) -> None:
    _tree(cli.scrape)
    res = cli.run(cli.load("--dry-run"))
    assert res.code == 0, res.stderr
    assert _tables(dsn) == []
    assert _store(cli.image_dir) == []


def test_single_file(cli: Cli, dsn: str) -> None:
    _tree(cli.scrape, bad=True)
    one = cli.scrape.root / "2025-08-03/FL/Belmar_01_parse.json"
    args = ["load", *cli.load_base(), "--single-file", str(one), "--tag", "cli-tag", "--report-json", str(cli.report)]
    res = cli.run(args)
    assert res.code == 0, res.stderr
    assert query(dsn, "SELECT search_state, license_number, image_hash IS NOT NULL FROM search_results") == [
        ("FL", "NP002169", True)]
    assert cli.report_json()["files_loaded"] == 1


def test_init_db_and_status(cli: Cli, dsn: str) -> None:
    empty = cli.run(["status", *cli.base()])
    assert empty.code == 0, empty.stderr
    assert "no datasets yet" in empty.stdout
    first = cli.run(["init-db", *cli.base()])
    assert (first.code, first.stdout.strip()) == (0, "schema created")
    assert {"datasets", "search_results", "image_assets", "load_runs"} <= {t for (t,) in _tables(dsn)}
    again = cli.run(["init-db", *cli.base()])
    assert (again.code, again.stdout.strip()) == (0, "schema current")

    _tree(cli.scrape)
    assert cli.run(cli.load()).code == 0
    res = cli.run(["status", *cli.base()])
    assert res.code == 0, res.stderr
    [line] = [ln for ln in res.stdout.splitlines() if "cli-tag" in ln]
    assert line.split()[2:4] == ["3", "2"]  # id, tag, rows, images


# -- secrets --------------------------------------------------------------------------


@pytest.fixture
def secret_dsns(admin_dsn: str, dsn: str) -> Iterator[list[str]]:
    """The test database through a role with a password: as key=value and as a URL."""
    role = f"pl_secret_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}").format(
            sql.Identifier(role), sql.Literal(PASSWORD)))
    parts = conninfo_to_dict(dsn)
    url = (f"postgresql://{role}:{PASSWORD}@/{parts['dbname']}"
           + (f"?host={quote(str(parts['host']), safe='')}" if parts.get("host") else ""))
    try:
        yield [make_conninfo(dsn, user=role, password=PASSWORD), url]
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(sql.Identifier(role)))
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_password_never_printed_or_written(cli: Cli, dsn: str, secret_dsns: list[str]) -> None:
    _tree(cli.scrape, bad=True)
    outputs: list[str] = []

    def run(args: list[str]) -> Result:
        res = cli.run(args)
        outputs.extend([res.stdout, res.stderr])
        for path in (cli.report, cli.rejects):
            if path.exists():
                outputs.append(path.read_text())
                path.unlink()
        return res

    kv_dsn, url_dsn = secret_dsns
    for i, secret_dsn in enumerate(secret_dsns):
        assert run(cli.load("--debug-log", dsn=secret_dsn, tag=f"secret-{i}")).code == 1
    assert run(["status", *cli.base(url_dsn), "--debug-log"]).code == 0
    assert run(["init-db", *cli.base(kv_dsn)]).code == 0
    assert query(dsn, "SELECT DISTINCT d.tag FROM search_results JOIN datasets d ON d.id = dataset_id "
                      "ORDER BY 1") == [("secret-0",), ("secret-1",)]
    assert any("secret-0" in out for out in outputs)  # status printed through the password DSN

    # Failing loads: a failure inside the transaction, an unreachable server, a malformed URL.
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("ALTER TABLE search_results ADD CONSTRAINT no_renewals CHECK (license_status <> 'Renewed')")
    cli.scrape.search("2025-08-04/PA/Belmar_01", document(ts="2025-08-04T10:00:00", licenses=[
        license_(license_status="Renewed")]))
    assert run(cli.load("--debug-log", dsn=url_dsn, tag="secret-0")).code == 3
    assert run(cli.load("--debug-log", dsn=f"postgresql://nouser:{PASSWORD}@127.0.0.1:1/x")).code == 3
    assert run(cli.load(dsn=f"postgresql://nouser:{PASSWORD}@[::1/x")).code in (2, 3)

    manifests = [manifest_text(p) if p.suffix == ".parquet" else p.read_text()  # and the seals beside them
                 for p in (cli.tmp / "manifests").rglob("*") if p.is_file()]
    assert any(p.name.endswith(".seal.json") for p in (cli.tmp / "manifests").iterdir())
    stored = [r[0] for r in query(dsn, "SELECT report::text FROM load_runs")]
    assert outputs and manifests and stored
    leaks = [text for text in outputs + manifests + stored if PASSWORD in text]
    assert leaks == []
