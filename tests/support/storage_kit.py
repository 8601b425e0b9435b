"""The real Supabase Storage server for the tests and benchmarks, from the kit in ../shared/supabase-storage.

The kit (README there) builds the open-source server at a pinned commit with nothing but the npm
registry, and runs it against a PostgreSQL database we give it. The build (~720 MB of node_modules)
is cached outside the repository, under the test data folder, one folder per pinned commit; it is
made once per test run at most (a no-op when already built), under a file lock so that two runs do
not build at once. `python -m tests.support.storage_kit` builds it ahead (the CI does, before the
suite). Where the kit is absent, the tests that need it skip and say so.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from loader.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def absent() -> str:
    """Why the tests against the real server skip: where the kit was looked for."""
    given = os.environ.get("PHARMLOAD_STORAGE_KIT")
    where = (f"PHARMLOAD_STORAGE_KIT={given} has no build.sh" if given else
             "looked in ../shared/supabase-storage beside the checkout and /work/shared/supabase-storage; "
             "set PHARMLOAD_STORAGE_KIT")
    return f"the Supabase Storage kit is absent ({where}): the tests against the real Storage server are skipped"


def kit() -> Path | None:
    """The kit folder: $PHARMLOAD_STORAGE_KIT, else ../shared/supabase-storage beside this checkout (or
    beside the main checkout when this is a git worktree), else /work/shared/supabase-storage."""
    given = os.environ.get("PHARMLOAD_STORAGE_KIT")
    places = [Path(given)] if given else [REPO.parent / "shared" / "supabase-storage"]
    git = REPO / ".git"
    if not given and git.is_file():  # a worktree: .git names <main>/.git/worktrees/<name>
        places.append(Path(git.read_text().split(":", 1)[1].strip()).parents[2].parent / "shared" / "supabase-storage")
    if not given:
        places.append(Path("/work/shared/supabase-storage"))
    return next((p for p in places if (p / "build.sh").is_file()), None)


def data_root() -> Path:
    """The test data folder (tests/conftest.py keeps the embedded PostgreSQL there too)."""
    base = Path(os.environ.get("PHARMLOAD_TEST_DATA_DIR", f"/var/tmp/pharmload-test-{os.getuid()}"))
    base.mkdir(parents=True, exist_ok=True)
    return base


def build(kit_dir: Path) -> Path:
    """Build the kit's server into the cache (a no-op when built); its build folder."""
    commit = (kit_dir / "SOURCE_COMMIT").read_text().strip()
    dest = data_root() / "supabase-storage" / commit[:12]
    dest.mkdir(parents=True, exist_ok=True)
    with open(dest.parent / f".{dest.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = subprocess.run([str(kit_dir / "build.sh"), str(dest)], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"building the Supabase Storage server failed:\n{done.stdout[-2000:]}{done.stderr[-3000:]}")
    return dest


def version(kit_dir: Path, build_dir: Path) -> str:
    """What the test log names: `supabase/storage 1.11.2 (commit 4fa61fba9371)`."""
    commit = (kit_dir / "SOURCE_COMMIT").read_text().strip()
    package = json.loads((build_dir / "storage" / "package.json").read_text())
    return f"supabase/storage {package.get('version', '?')} (commit {commit[:12]})"


@dataclass(frozen=True)
class StorageServer:
    """A running server: `url` is the kit's client URL (its prefix proxy), `storage_url` the bare server
    (what tests.support.faultproxy stands in front of), `key` the service-role key."""

    url: str
    storage_url: str
    key: str
    version: str


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _database_url(dsn: str) -> str:
    """A libpq DSN as the URL the server (node-postgres) takes; a Unix socket folder goes in ?host=."""
    from psycopg.conninfo import conninfo_to_dict

    p = conninfo_to_dict(dsn)
    host = str(p.get("host") or "127.0.0.1")
    user, password = quote(str(p.get("user") or "postgres")), p.get("password")
    auth = f"{user}:{quote(str(password))}" if password else user
    if host.startswith("/"):
        return f"postgresql://{auth}@/{p['dbname']}?host={quote(host, safe='/')}&port={p.get('port') or 5432}"
    return f"postgresql://{auth}@{host}:{p.get('port') or 5432}/{p['dbname']}"


def serve(admin_dsn: str, state: Path, kit_dir: Path | None = None) -> Iterator[StorageServer]:
    """Build if needed, start the server on free ports against a fresh database of the server that
    admin_dsn names, yield it, then stop it (by its PIDs: the kit's stop.sh) and drop the database."""
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import make_conninfo

    kit_dir = kit_dir or kit()
    if kit_dir is None:
        raise FileNotFoundError(absent())
    build_dir = build(kit_dir)
    name = f"pharmload_storage_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    env = {**os.environ, "DATABASE_URL": _database_url(make_conninfo(admin_dsn, dbname=name)),
           "STORAGE_PORT": str(free_port()), "PROXY_PORT": str(free_port())}
    try:
        started = subprocess.run([str(kit_dir / "run.sh"), str(build_dir), str(state)], env=env,
                                 capture_output=True, text=True, timeout=180)
        if started.returncode:
            raise RuntimeError(f"the Supabase Storage server did not start:\n{started.stderr[-3000:]}")
        exports = dict(re.findall(r"^export (\w+)=(\S+)$", (state / "env.sh").read_text(), re.M))
        yield StorageServer(exports["SUPABASE_URL"], exports["STORAGE_URL"],
                            (state / "service_role.jwt").read_text().strip(), version(kit_dir, build_dir))
    finally:
        subprocess.run([str(kit_dir / "stop.sh"), str(state)], capture_output=True, timeout=60)
        shutil.rmtree(state, ignore_errors=True)
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def supabase_settings(settings: Settings, url: str, key: str, bucket: str, **changes: Any) -> Settings:
    """`settings` turned to the Supabase backend against this Storage URL and bucket, with the quick
    retries and modest concurrency the tests use (changes override)."""
    return settings.replace(**{"backend": "supabase", "supabase_url": url, "supabase_key": key, "bucket": bucket,
                               "max_concurrent_uploads": 4, "retry_delay": 0.01, **changes})


def main() -> int:
    """Build the server ahead of the suite (.ci/run); where the kit is absent, say so and succeed."""
    found = kit()
    if found is None:
        print(f"note: {absent()}")
        return 0
    dest = build(found)
    print(f"supabase storage server: {version(found, dest)} built in {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
