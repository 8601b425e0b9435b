"""Where a load goes: the database DSN and the image store for the configured backend."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from loader import dbprocess, embedded
from loader.settings import Settings
from loader.store import LocalStore

if TYPE_CHECKING:
    from loader.supabase_store import SupabaseStore

    Store = LocalStore | SupabaseStore


@contextmanager
def database(settings: Settings, proc: dbprocess.DbProcess | None = None) -> Iterator[str]:
    """The DSN to use; for the embedded backend, start the server for the block's duration (its
    database is made sure of in proc, when there is one: psycopg is imported there)."""
    if settings.backend != "embedded":
        yield settings.dsn
        return
    server = embedded.start(settings.data_dir)
    try:
        dbprocess.ensure_database(proc, server.dsn("postgres"), settings.database)
        yield server.dsn(settings.database)
    finally:
        server.release(stop=settings.stop_embedded)


def image_store(settings: Settings) -> Store:
    """The image store of the backend: a local folder, or a Supabase Storage bucket."""
    if settings.backend == "supabase":
        from loader.supabase_store import SupabaseStore

        return SupabaseStore(settings.supabase_url, settings.supabase_key, settings.bucket,
                             settings.max_concurrent_uploads, settings.retries, settings.retry_delay,
                             settings.upload_timeout)
    return LocalStore(settings.image_dir, link=settings.image_link)
