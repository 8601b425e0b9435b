"""The PostgreSQL server every contender loads into: one per benchmark, one database per timed run."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import psutil  # type: ignore[import-untyped]  # no stubs in the venv
import psycopg
from psycopg import sql


class Server:
    """The embedded PostgreSQL, kept for the whole benchmark; one database per timed run."""

    def __init__(self, data_dir: Path) -> None:
        from loader.db import embedded
        self.data_dir = data_dir
        self.embedded = embedded.start(data_dir)
        self.admin = psycopg.connect(self.dsn("postgres"), autocommit=True)
        for (name,) in self.admin.execute("SELECT datname FROM pg_database WHERE datname LIKE 'bench\\_%'").fetchall():
            self.drop(name)  # left by an interrupted benchmark
        self.postmaster_pid = int((data_dir / "postmaster.pid").read_text().split()[0])
        self.version = str(self.admin.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
        self.settings = {name: str(self.admin.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()[0])  # type: ignore[index]
                         for name in ("shared_buffers", "fsync", "synchronous_commit", "max_wal_size", "work_mem")}

    def dsn(self, database: str) -> str:
        return self.embedded.dsn(database)

    def create(self, database: str) -> str:
        self.drop(database)
        self.admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        return self.dsn(database)

    def drop(self, database: str) -> None:
        self.admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))

    def cpu_seconds(self) -> float:
        """CPU of the whole server so far: live processes, plus the backends that exited (reaped by
        the postmaster, so in its children's times)."""
        root = psutil.Process(self.postmaster_pid)
        t = root.cpu_times()
        total = t.user + t.system + t.children_user + t.children_system
        for child in root.children():
            with contextlib.suppress(psutil.Error):
                c = child.cpu_times()
                total += c.user + c.system
        return float(total)

    def settle(self, baseline: int, timeout: float = 3.0) -> None:
        """Wait until the backends a contender opened have exited (so their CPU is accounted)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(psutil.Error):
                if len(psutil.Process(self.postmaster_pid).children()) <= baseline:
                    return
            time.sleep(0.01)

    def backends(self) -> int:
        return len(psutil.Process(self.postmaster_pid).children())

    def close(self) -> None:
        with contextlib.suppress(psycopg.Error):
            self.admin.close()
        self.embedded.release(stop=True)
