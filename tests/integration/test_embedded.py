"""The embedded server wrapper (loader.db.embedded) on fresh servers of its own.

Each test starts its own server in a new folder under /var/tmp/pharmload-test-<uid>/ (never under a private
folder: as root the wheel makes the data folder's ancestors world-readable) and removes it afterwards,
stopping whatever is still running there. A fresh server costs a few seconds, so there are four.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from loader.db import embedded
from tests.scrape import Scrape, document, license_

BASE = Path(os.environ.get("PHARMLOAD_TEST_DATA_DIR", f"/var/tmp/pharmload-test-{os.getuid()}"))
REPO = Path(__file__).resolve().parents[2]
HANDLES = ".handle_pids.json"


def _alive(pid: int) -> bool:
    """Whether the process exists and is not a zombie waiting to be reaped."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return fields[0] not in ("Z", "X")


def _gone(pid: int, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _postmaster(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return None


def _handles(data_dir: Path) -> list[int]:
    text = (data_dir / HANDLES).read_text().strip()
    return [int(p) for p in json.loads(text)] if text else []


def _tcp_listeners(pid: int) -> list[str]:
    """The TCP addresses a process listens on: its socket inodes matched against /proc/net/tcp{,6}."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            match = re.fullmatch(r"socket:\[(\d+)\]", os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            continue
        if match:
            inodes.add(match.group(1))
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if cols[3] == "0A" and cols[9] in inodes:  # 0A: LISTEN
                found.append(cols[1])
    return found


def _stop_whatever_runs(data_dir: Path) -> None:
    """Last-resort clean-up: a fast shutdown of a server left running in data_dir, then SIGKILL."""
    pid = _postmaster(data_dir)
    if pid is None or not _alive(pid):
        return
    os.kill(pid, signal.SIGINT)
    if not _gone(pid):
        os.kill(pid, signal.SIGKILL)
        _gone(pid)


@pytest.fixture
def data_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A new, not yet existing data folder; afterwards the server in it is stopped and the folder removed."""
    for name in ("LC_ALL", "LANG"):  # start() sets them for the processes it starts: give them back after
        if name in os.environ:
            monkeypatch.setenv(name, os.environ[name])
        else:
            monkeypatch.delenv(name, raising=False)
    folder = BASE / f"embedded-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    try:
        yield folder / "pgdata"
    finally:
        _stop_whatever_runs(folder / "pgdata")
        shutil.rmtree(folder, ignore_errors=True)


def _usable(server: embedded.EmbeddedServer) -> bool:
    with psycopg.connect(server.dsn("postgres"), connect_timeout=5) as conn:
        return conn.execute("SELECT 42").fetchone() == (42,)


def test_fresh_server_listens_only_on_a_private_socket_and_stops(data_dir: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # An environment in which initdb cannot run: start() must give it a locale that exists.
    monkeypatch.setenv("LC_ALL", "xx_XX.NOT-A-LOCALE")
    monkeypatch.setenv("LANG", "xx_XX.NOT-A-LOCALE")
    server = embedded.start(data_dir)
    pid = _postmaster(data_dir)
    try:
        assert pid is not None and _alive(pid)
        with psycopg.connect(server.dsn("postgres")) as conn:
            assert conn.execute("SHOW listen_addresses").fetchone() == ("",)
            assert conn.execute("SHOW unix_socket_directories").fetchone() == (str(server.socket_dir),)
            assert conn.execute("SHOW server_encoding").fetchone() == ("UTF8",)
            assert conn.execute("SELECT datcollate, datctype FROM pg_database WHERE datname = 'template1'"
                                ).fetchone() == ("C.UTF-8", "C.UTF-8")
        assert _tcp_listeners(pid) == []
        socket_dir = server.socket_dir.resolve()
        assert socket_dir == data_dir.resolve() or data_dir.resolve() in socket_dir.parents
        sockets = [p for p in socket_dir.iterdir() if p.name.startswith(".s.PGSQL.")]
        assert sockets and all(p.is_socket() for p in sockets if not p.name.endswith(".lock"))
        assert stat.S_IMODE(data_dir.stat().st_mode) & 0o077 == 0, oct(data_dir.stat().st_mode)
        assert _handles(data_dir) == [os.getpid()]

        again = embedded.start(data_dir)  # a second start in the same process joins the running server
        assert _usable(again) and again.socket_dir == server.socket_dir
        assert _postmaster(data_dir) == pid
        assert _handles(data_dir) == [os.getpid()]
    finally:
        server.release(stop=True)
    assert _gone(pid), "release(stop=True) left the server running"
    assert not (data_dir / "postmaster.pid").exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(server.dsn("postgres"), connect_timeout=2).close()

    restarted = embedded.start(data_dir)  # and a start after the stop, in the same process, starts it again
    try:
        assert _usable(restarted)
        pid = _postmaster(data_dir)
        assert pid is not None and _alive(pid)
    finally:
        restarted.release(stop=True)
    assert _gone(pid), "release(stop=True) left the restarted server running"


_START_THEN_DIE = """
import os, signal, sys
from pathlib import Path
from loader.db import embedded
from tests.scrape import Scrape, document, license_
embedded.start(Path(sys.argv[1]))
os.kill(os.getpid(), signal.SIGKILL)  # no clean-up at all: the handle stays behind
"""
_START_THEN_RELEASE = """
import sys
from pathlib import Path
from loader.db import embedded
from tests.scrape import Scrape, document, license_
embedded.start(Path(sys.argv[1])).release(stop=True)
"""


def _dead_pid() -> int:
    proc = subprocess.Popen(["sleep", "0"])
    proc.wait()
    return proc.pid


def test_handles_of_killed_processes_are_pruned_at_the_next_start(data_dir: Path) -> None:
    killed = subprocess.run([sys.executable, "-c", _START_THEN_DIE, str(data_dir)], cwd=REPO, capture_output=True,
                            timeout=120, check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode(errors="replace")[-2000:]
    pid = _postmaster(data_dir)
    assert pid is not None and _alive(pid), "the killed process's server should still be running"
    dead = _dead_pid()
    (data_dir / HANDLES).write_text(json.dumps([*_handles(data_dir), dead]))
    assert len(_handles(data_dir)) == 2

    server = embedded.start(data_dir)
    try:
        assert _postmaster(data_dir) == pid, "start() should join the running server, not start another"
        assert _usable(server)
        assert _handles(data_dir) == [os.getpid()], "the dead processes' handles were not pruned"
    finally:
        server.release(stop=True)
    assert _gone(pid), "the server kept running for handles of dead processes"

    # A handle of a process that is alive is kept: releasing ours does not stop the server under it.
    holder = subprocess.Popen(["sleep", "120"])
    try:
        (data_dir / HANDLES).write_text(json.dumps([holder.pid, _dead_pid()]))
        server = embedded.start(data_dir)
        pid = _postmaster(data_dir)
        assert pid is not None
        try:
            assert _handles(data_dir) == [holder.pid, os.getpid()]
        finally:
            server.release(stop=True)
        assert _alive(pid), "the server was stopped while another live process held it"
        assert _handles(data_dir) == [holder.pid]
    finally:
        holder.kill()
        holder.wait()
    # That holder is dead now: the next start (in another process) prunes it and stops the server at the end.
    last = subprocess.run([sys.executable, "-c", _START_THEN_RELEASE, str(data_dir)], cwd=REPO,
                          capture_output=True, timeout=120, check=False)
    assert last.returncode == 0, last.stderr.decode(errors="replace")[-2000:]
    assert _gone(pid), "the server kept running after the last live handle was released"


def test_start_after_keeping_the_server_holds_it_again(data_dir: Path) -> None:
    """--keep-server, then another load in the same process (a wrapper calling pipeline.run twice): the
    second start must hold a handle again, so that another process cannot stop the server under it and
    its own release(stop=True) does stop it."""
    server = embedded.start(data_dir)
    pid = _postmaster(data_dir)
    assert pid is not None
    try:
        server.release(stop=False)
        assert _alive(pid), "release(stop=False) stopped the server"
        assert os.getpid() not in _handles(data_dir)
        again = embedded.start(data_dir)
        assert _usable(again)
        assert _handles(data_dir) == [os.getpid()], "the second start in this process holds no handle"
    finally:
        server.release(stop=True)
    assert _gone(pid), "release(stop=True) after a second start left the server running"


def test_the_command_loads_into_a_fresh_embedded_server_and_records_its_rerun(data_dir: Path, tmp_path: Path,
                                                                              scrape: Scrape) -> None:
    """The default backend end to end: the loader starts the server, its db process creates the
    database and runs the load; a second run finds the tree unchanged and records that."""
    scrape.search("2025-08-03/PA/Belmar_01", document(licenses=[license_(), license_(license_number="X1")]))
    args = [sys.executable, "-m", "loader", "load", "--backend", "embedded", "--data-dir", str(data_dir),
            "--states-dir", str(scrape.root), "--tag", "embedded-tag", "--image-dir", str(tmp_path / "images"),
            "--manifest-dir", str(tmp_path / "manifests")]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PHARMLOAD_", "PG"))}
    first = subprocess.run(args, capture_output=True, text=True, env=env, timeout=180, check=False)
    assert first.returncode == 0, first.stderr
    assert "Rows: 2 inserted" in first.stderr
    again = subprocess.run(args, capture_output=True, text=True, env=env, timeout=180, check=False)
    assert again.returncode == 0, again.stderr
    assert "unchanged since load" in again.stderr
    server = embedded.start(data_dir)
    try:
        with psycopg.connect(server.dsn("pharmchecker")) as conn:
            assert conn.execute("SELECT count(*) FROM search_results").fetchone() == (2,)
            assert conn.execute("SELECT files_seen, files_skipped FROM load_runs ORDER BY id").fetchall() == [
                (1, 0), (1, 1)]
    finally:
        server.release(stop=True)
