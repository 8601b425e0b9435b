"""Which database a command talks to: the DSN of the configured backend.

For the embedded backend that means starting (or joining) its server for the block's duration; the
other backends name their server in the settings.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from loader.db import embedded, process
from loader.settings import Settings


@contextmanager
def database(settings: Settings, proc: process.DbProcess | None = None) -> Iterator[str]:
    """The DSN to use; for the embedded backend, start the server for the block's duration (its
    database is made sure of in proc, when there is one: psycopg is imported there)."""
    if settings.backend != "embedded":
        yield settings.dsn
        return
    server = embedded.start(settings.data_dir)
    try:
        process.ensure_database(proc, server.dsn("postgres"), settings.database)
        yield server.dsn(settings.database)
    finally:
        server.release(stop=settings.stop_embedded)
