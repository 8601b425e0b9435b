"""PgBouncer in transaction mode in front of the test server, as Supabase's pooler on port 6543 runs.

Started by the tests that need it; they are skipped, with the reason shown, where the machine has no
pgbouncer (the Debian package `pgbouncer`, which .ci/run installs when it can).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict, make_conninfo


def available() -> str | None:
    """Why PgBouncer cannot run here, or None when it can."""
    if shutil.which("pgbouncer") is None and not Path("/usr/sbin/pgbouncer").exists():
        return "pgbouncer is not installed (Debian package pgbouncer)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgBouncer:
    """A transaction-mode pooler forwarding every database to the server of `server_dsn` as `user`."""

    def __init__(self, server_dsn: str, user: str, folder: Path) -> None:
        params = conninfo_to_dict(server_dsn)
        self.folder = folder
        self.port = _free_port()
        self.user = user
        folder.mkdir(parents=True, exist_ok=True)
        target = f"host={params.get('host', '127.0.0.1')} port={params.get('port', 5432)} user={user}"
        (folder / "pgbouncer.ini").write_text(f"""[databases]
* = {target}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = any
pool_mode = transaction
max_client_conn = 50
default_pool_size = 5
ignore_startup_parameters = extra_float_digits,options
logfile = {folder / 'pgbouncer.log'}
pidfile = {folder / 'pgbouncer.pid'}
""")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        args = [binary, str(self.folder / "pgbouncer.ini")]
        if os.geteuid() == 0:  # pgbouncer refuses to run as root; the embedded server's user can reach its socket
            shutil.chown(self.folder, "pgserver")
            args[1:1] = ["-u", "pgserver"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    err = self.proc.stderr.read() if self.proc.stderr else b""
                    raise RuntimeError(f"pgbouncer exited: {err!r}") from None
                time.sleep(0.05)
        raise RuntimeError("pgbouncer did not start listening")

    def dsn(self, dbname: str) -> str:
        return make_conninfo(host="127.0.0.1", port=str(self.port), dbname=dbname, user=self.user)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
