"""Shared fixtures: a real PostgreSQL server for the whole session, a fresh database per test.

The server is the one named by PHARMLOAD_TEST_DSN, or else the embedded one from the pinned wheel,
started in a folder of its own (under /var/tmp, never under a private home folder when root).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from loader.db import embedded
from loader.settings import Settings
from tests.scrape import Scrape


def _test_data_dir() -> Path:
    base = Path(os.environ.get("PHARMLOAD_TEST_DATA_DIR", f"/var/tmp/pharmload-test-{os.getuid()}"))
    base.mkdir(parents=True, exist_ok=True)
    return base / "pgdata"


@pytest.fixture(scope="session")
def admin_dsn() -> Iterator[str]:
    """A DSN with the right to create databases."""
    given = os.environ.get("PHARMLOAD_TEST_DSN")
    if given:
        yield given
        return
    server = embedded.start(_test_data_dir())
    try:
        yield server.dsn("postgres")
    finally:
        server.release(stop=True)


@pytest.fixture
def dsn(admin_dsn: str) -> Iterator[str]:
    """A new, empty database for one test, dropped afterwards."""
    name = f"pharmload_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_conninfo(admin_dsn, dbname=name)
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def scrape(tmp_path: Path) -> Scrape:
    return Scrape(tmp_path / "scrape")


@pytest.fixture
def settings(dsn: str, tmp_path: Path, scrape: Scrape) -> Settings:
    """Settings for a load of `scrape` into the test database, in-process workers."""
    return Settings(command="load", backend="postgresql", dsn=dsn, states_dir=scrape.root, tag="test-tag",
                    image_dir=tmp_path / "images", max_workers=1, data_dir=tmp_path / "unused-pgdata",
                    manifest_dir=tmp_path / "manifests", retry_delay=0.05)


def query(dsn: str, text: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(text, params).fetchall()


def manifest_text(path: Path) -> str:
    """Everything a manifest (Parquet) holds, as text: its header and every string value."""
    import polars as pl

    table = pl.read_parquet(path)
    values = [str(v) for col in table.columns if table[col].dtype == pl.String for v in table[col].to_list()]
    return "\n".join([pl.read_parquet_metadata(path)["pharmload"], *values])
