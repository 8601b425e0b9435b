"""A load's database transaction in a process of its own, forked before the heavy imports.

Importing psycopg (~0.17 s) and polars (~0.11 s) one after the other is half of a 515-file first
load, and it runs on one of the two cores. So the CLI forks this process before either is imported
(`DbProcess.fork`): the child imports psycopg and waits while the loader imports polars and plans
(or, on a re-run, walks the tree to see whether anything changed), and it then runs the load's
`merge.LoadTransaction`, one call at a time, as the loader asks (and, for the embedded server,
`pg.ensure_database` before it). It is the same transaction with the same errors, in the same
order; only the process differs. Without a DbProcess (the library API, no fork, a child that
died), `transaction` gives the LoadTransaction in the loader's own process instead.

The loader sends (method, args) as a pickle over a socket pair and gets (ok, value or error) back.
A PharmloadError crosses as itself; anything else arrives as a LoadError naming it. The child acts
on SIGINT only while it runs a call: psycopg then cancels the statement on the server, so `cancel`
(and Ctrl-C) stops a wait for the tag's lock at once. When the loader dies, even by SIGKILL, the
child cancels what it runs, rolls back and exits.
"""

from __future__ import annotations

import os
import pickle
import signal
import socket
import sys
import threading
import time
import traceback
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from loader import heavy
from loader.errors import LoadError, PharmloadError, TransientDatabaseError

if TYPE_CHECKING:
    from loader.db.merge import LoadTransaction
    from loader.report import MergeCounts
    from loader.settings import Settings

# LoadTransaction methods the child runs as they are; begin, close and ensure_database are its own.
CALLS = frozenset({"stage", "merge", "committed", "terminate_backend", "record_run", "commit"})
WATCH_INTERVAL = 0.5  # seconds between the child's checks that the loader still runs
GRACE = 10.0  # seconds the child has to cancel and roll back after the loader died
INTERRUPT_CHECK = 0.2  # seconds: how long the loader's wait for a reply may hold up Ctrl-C


class Transaction(Protocol):
    """What the pipeline uses of a load's transaction (merge.LoadTransaction, or its remote twin)."""

    def begin(self, settings: Settings) -> int: ...
    def stage(self, table: str, columns: tuple[str, ...], data: bytes) -> None: ...
    def merge(self, distinct: int) -> MergeCounts: ...
    def committed(self, load_id: str) -> bool: ...
    def terminate_backend(self, dsn: str) -> None: ...
    def record_run(self, tag: str, started_at: datetime, counts: dict[str, Any], report: dict[str, Any],
                   load_id: str, manifest_digest: str | None = None, status: str = "ok") -> int: ...
    def commit(self) -> None: ...
    def cancel(self) -> None: ...
    def close(self) -> None: ...


class DbProcess:
    """The loader's end of the forked child: one call at a time, from any thread."""

    def __init__(self, pid: int, sock: socket.socket) -> None:
        self.pid = pid
        self.sock = sock
        self.lock = threading.Lock()
        self.broken = False

    @classmethod
    def fork(cls) -> DbProcess | None:
        """Fork the child now; None where fork is missing, or unsafe because a thread runs already."""
        if not hasattr(os, "fork") or threading.active_count() > 1:
            return None
        ours, theirs = socket.socketpair()
        loader = os.getpid()
        pid = os.fork()
        if pid == 0:  # the child: serve until the loader closes its end, and never return
            code = 0
            try:
                ours.close()
                _serve(theirs, loader)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        theirs.close()
        return cls(pid, ours)

    def usable(self) -> bool:
        return not self.broken

    def call(self, name: str, *args: Any) -> Any:
        """Run tx.<name>(*args) in the child and return its result or raise its error."""
        with self.lock:
            if self.broken:
                raise TransientDatabaseError("the database process has ended; the load is retried without it")
            try:
                self.sock.settimeout(None)
                _send(self.sock, (name, args))
                # Waited for in slices: Ctrl-C may be delivered to another thread (one of polars'),
                # and this thread acts on it only when it next runs Python code.
                self.sock.settimeout(INTERRUPT_CHECK)
                reply = _receive(self.sock)
            except OSError:
                reply = None
            except BaseException:  # Ctrl-C in this thread: the call runs on, so stop it there too
                self.broken = True  # its reply may still come, and no later call could tell it apart
                self.interrupt()
                raise
            if reply is None:
                self.broken = True
                raise TransientDatabaseError("the database process ended unexpectedly; its transaction was "
                                             "rolled back")
        ok, value = reply
        if not ok:
            raise value
        return value

    def close(self, timeout: float = 5.0) -> None:
        """End the child and reap it (its CPU time then counts as the loader's, as its workers' do)."""
        self.broken = True
        self.sock.close()  # the child's next read ends its loop; it rolls back what is open and exits
        deadline = time.monotonic() + timeout
        while os.waitpid(self.pid, os.WNOHANG) == (0, 0):
            if time.monotonic() > deadline:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
                return
            time.sleep(0.002)

    def interrupt(self) -> None:
        """Have the child cancel the statement it runs now (none: nothing happens)."""
        try:
            os.kill(self.pid, signal.SIGINT)
        except ProcessLookupError:
            self.broken = True


class RemoteTransaction:
    """A LoadTransaction that runs in the DbProcess; same methods, same errors."""

    def __init__(self, proc: DbProcess, dsn: str, secrets: tuple[str, ...]) -> None:
        self.proc = proc
        self.dsn = dsn
        self.secrets = secrets
        self.begun = False

    def begin(self, settings: Settings) -> int:
        self.begun = True
        return int(self.proc.call("begin", self.dsn, self.secrets, settings))

    def stage(self, table: str, columns: tuple[str, ...], data: bytes) -> None:
        self.proc.call("stage", table, columns, data)

    def merge(self, distinct: int) -> MergeCounts:
        return self.proc.call("merge", distinct)  # type: ignore[no-any-return]

    def committed(self, load_id: str) -> bool:
        return bool(self.proc.call("committed", load_id))

    def terminate_backend(self, dsn: str) -> None:
        self.proc.call("terminate_backend", dsn)

    def record_run(self, tag: str, started_at: datetime, counts: dict[str, Any], report: dict[str, Any],
                   load_id: str, manifest_digest: str | None = None, status: str = "ok") -> int:
        return int(self.proc.call("record_run", tag, started_at, counts, report, load_id, manifest_digest, status))

    def commit(self) -> None:
        self.proc.call("commit")

    def cancel(self) -> None:
        self.proc.interrupt()

    def close(self) -> None:
        """Roll back what did not commit and close the connection; the child stays for a retry."""
        if self.begun and self.proc.usable():
            self.proc.call("close")


def transaction(proc: DbProcess | None, dsn: str, secrets: tuple[str, ...]) -> Transaction:
    """The load's transaction: in the DbProcess when there is one, else in this process."""
    if proc is not None and proc.usable():
        return RemoteTransaction(proc, dsn, secrets)
    with heavy.kept_for_good():  # psycopg, imported only by a load that needs it here
        from loader.db.merge import LoadTransaction
    return LoadTransaction(dsn, secrets)


def ensure_database(proc: DbProcess | None, admin_dsn: str, name: str) -> None:
    """pg.ensure_database (the embedded server's database), in the DbProcess when there is one."""
    if proc is not None and proc.usable():
        proc.call("ensure_database", admin_dsn, name)
        return
    with heavy.kept_for_good():  # psycopg, imported only by a load that needs it here
        from loader.db import pg
    pg.ensure_database(admin_dsn, name)


# --- the child ---------------------------------------------------------------------------------

_running = False  # whether the child runs a call now: SIGINT interrupts only that


def _serve(sock: socket.socket, loader: int) -> None:
    """The child's life: import psycopg, then run calls until the loader closes its end."""
    global _running
    signal.signal(signal.SIGINT, _interrupt)
    # SIGTERM sent to the whole group (systemd, a container's end) is the loader's to act on: it
    # unwinds (cli.py) and closes this end, and the transaction rolls back here as it would on Ctrl-C.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.Thread(target=_watch, args=(loader,), daemon=True, name="pharmload-db-watch").start()
    with heavy.kept_for_good():
        from loader.db.merge import LoadTransaction
    tx: LoadTransaction | None = None
    while (request := _receive(sock)) is not None:
        name, args = request
        try:
            _running = True
            if name == "begin":
                tx = LoadTransaction(args[0], args[1])
                reply: tuple[bool, Any] = (True, tx.begin(args[2]))
            elif name == "ensure_database":
                from loader.db import pg
                pg.ensure_database(*args)
                reply = (True, None)
            elif name == "close":
                if tx is not None:
                    tx.close()
                tx = None
                reply = (True, None)
            elif name in CALLS and tx is not None:
                reply = (True, getattr(tx, name)(*args))
            else:
                reply = (False, LoadError(f"the database process got {name!r} before begin"))
        except PharmloadError as exc:
            reply = (False, exc)
        except KeyboardInterrupt:
            reply = (False, LoadError("interrupted: the database statement was cancelled"))
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            reply = (False, LoadError(f"the database process failed: {type(exc).__name__}: {exc}"))
        finally:
            _running = False
        try:
            _send(sock, reply)
        except OSError:  # the loader is gone
            break
    if tx is not None:
        tx.close()


def _interrupt(signum: int, frame: Any) -> None:
    if _running:
        raise KeyboardInterrupt


def _watch(loader: int) -> None:
    """In the child: when the loader is gone, cancel the running call (it may wait for a lock)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})  # SIGINT is for the main thread
    while os.getppid() == loader:
        time.sleep(WATCH_INTERVAL)
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(GRACE)
    os._exit(1)


def _send(sock: socket.socket, message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    sock.sendall(len(data).to_bytes(8, "little"))
    sock.sendall(data)


def _receive(sock: socket.socket) -> Any:
    """The next message, or None at the end of the stream."""
    header = _exactly(sock, 8)
    if header is None:
        return None
    body = _exactly(sock, int.from_bytes(header, "little"))
    return None if body is None else pickle.loads(body)


def _exactly(sock: socket.socket, size: int) -> bytearray | None:
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    while got < size:
        try:
            n = sock.recv_into(view[got:])
        except TimeoutError:  # a slice of the loader's wait has passed; see DbProcess.call
            continue
        if n == 0:
            return None
        got += n
    return buf
