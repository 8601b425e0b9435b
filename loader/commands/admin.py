"""The commands besides `load`: create or migrate the schema, and show what is loaded."""

from __future__ import annotations

from typing import Any

from loader.db import pg
from loader.db.target import database
from loader.settings import Settings


def init_db(settings: Settings) -> str:
    """Create the schema, or migrate an old PharmChecker one; returns what was done."""
    with database(settings) as dsn, pg.connect(dsn, settings.secrets) as conn, pg.translated(settings.secrets):
        outcome = pg.ensure_schema(conn, migrate=True)
        conn.commit()
        return outcome


def status(settings: Settings) -> list[dict[str, Any]]:
    """Datasets with their row and screenshot counts and their last load."""
    with database(settings) as dsn, pg.connect(dsn, settings.secrets) as conn, pg.translated(settings.secrets):
        if not pg.schema_state(conn)["has_search_results"]:
            return []
        return pg.fetch_all(conn, "status")


def runs(settings: Settings) -> list[dict[str, Any]]:
    """Recent loads from load_runs, newest first, optionally of one tag."""
    with database(settings) as dsn, pg.connect(dsn, settings.secrets) as conn, pg.translated(settings.secrets):
        if not pg.schema_state(conn)["has_load_runs"]:
            return []
        return pg.fetch_all(conn, "recent_runs", {"tag": settings.tag, "limit": settings.limit})
