"""The commands besides `load`: create or migrate the schema, and show what is loaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from loader.db import pg
from loader.db.target import database
from loader.errors import PharmloadError, redact
from loader.report import write_atomically
from loader.settings import Settings


def init_db(settings: Settings) -> str:
    """Create the schema, or migrate an old PharmChecker one; returns what was done."""
    with database(settings) as dsn, pg.connect(dsn, settings.secrets) as conn, pg.translated(settings.secrets):
        outcome = pg.ensure_schema(conn, migrate=True)
        conn.commit()
        return outcome


def status(settings: Settings) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Datasets with their row and screenshot counts and their last load; and the image figures:
    the store's object count and bytes (one listing), and the screenshot rows (how many, how many
    no search result references, how many wait for an upload: 'pending')."""
    from loader.commands.gc import store_name
    from loader.stores import image_store

    images: dict[str, Any] = {"store": {"name": store_name(settings)}}
    try:
        sizes = [o.size for o in image_store(settings).objects()]
        images["store"] |= {"objects": len(sizes), "bytes": sum(sizes)}
    except PharmloadError as exc:  # a status without the store's figures is still worth showing
        images["store"]["error"] = redact(str(exc), settings.secrets)
    with database(settings) as dsn, pg.connect(dsn, settings.secrets) as conn, pg.translated(settings.secrets):
        if not pg.schema_state(conn)["has_search_results"]:
            return [], images
        return pg.fetch_all(conn, "status"), images | pg.fetch_all(conn, "image_counts")[0]


def runs(settings: Settings) -> list[dict[str, Any]]:
    """Recent loads from load_runs, newest first, optionally of one tag."""
    with database(settings) as dsn, pg.connect(dsn, settings.secrets) as conn, pg.translated(settings.secrets):
        if not pg.schema_state(conn)["has_load_runs"]:
            return []
        return pg.fetch_all(conn, "recent_runs", {"tag": settings.tag, "limit": settings.limit})


def write_status(path: Path, datasets: list[dict[str, Any]], images: dict[str, Any]) -> None:
    """status --report-json: the datasets and the image figures, as JSON (for scripts: the cron
    job's retention reads the tags from it)."""
    write_atomically(path, orjson.dumps({"datasets": datasets, "images": images}, option=orjson.OPT_INDENT_2))
