"""Connections, SQL files and error classification: the only place besides merge.py that knows psycopg.

Every failure from the driver leaves here as one of our exception types, so the rest of the code
(and the retry loop) decides on `TransientDatabaseError` alone, never on driver details.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from importlib import resources
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from loader.db import locks
from loader.errors import ConfigError, DatabaseError, PharmloadError, TransientDatabaseError, redact

# SQLSTATEs where the same transaction, run again, can succeed.
TRANSIENT_SQLSTATES = {"40001", "40P01", "53300", "57P01", "57P02", "57P03", "55P03"}
TRANSIENT_CLASSES = ("08",)
PERMANENT_MESSAGES = ("could not translate host name", "authentication failed", "does not exist",
                      "no password supplied", "permission denied", "invalid dsn")


@functools.cache
def sql_text(name: str) -> str:
    """The statement in sql/<name>.sql, loaded by name."""
    return resources.files("loader.sql").joinpath(f"{name}.sql").read_text(encoding="utf-8")


def statement(name: str) -> sql.SQL:
    return sql.SQL(sql_text(name))  # trusted text: a file of our own package, never input


def classify(exc: BaseException, secrets: tuple[str, ...] = ()) -> PharmloadError:
    """Turn a driver error into ours: transient (retry may help) or permanent."""
    message = redact(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__, secrets)
    state = getattr(exc, "sqlstate", None)
    if isinstance(exc, psycopg.ProgrammingError) and state is None:  # libpq could not parse the DSN
        return ConfigError(f"bad connection string: {message}")
    if state in TRANSIENT_SQLSTATES or (state or "").startswith(TRANSIENT_CLASSES):
        return TransientDatabaseError(f"database connection problem ({state}): {message}")
    if state is None and isinstance(exc, psycopg.OperationalError):
        if any(p.lower() in message.lower() for p in PERMANENT_MESSAGES):
            return DatabaseError(f"cannot connect: {message}")
        return TransientDatabaseError(f"database connection lost: {message}")
    return DatabaseError(f"database error ({state or type(exc).__name__}): {message}")


def connect(dsn: str, secrets: tuple[str, ...] = (), **kwargs: Any) -> psycopg.Connection[Any]:
    """A connection with our error types; prepare_threshold=None so transaction poolers work."""
    try:
        return psycopg.connect(dsn, application_name="pharmload", prepare_threshold=None,
                               connect_timeout=10, **kwargs)
    except psycopg.Error as exc:
        raise classify(exc, secrets) from None


@contextmanager
def translated(secrets: tuple[str, ...] = ()) -> Iterator[None]:
    """Re-raise driver errors inside the block as pharmload errors."""
    try:
        yield
    except psycopg.Error as exc:
        raise classify(exc, secrets) from exc


SCHEMA_VERSION = 3  # the version sql/schema.sql writes into pharmload_schema


def schema_state(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(statement("schema_state"))
        row = cur.fetchone()
    assert row is not None
    state: dict[str, Any] = {k: bool(v) for k, v in row.items()}
    version = conn.execute(statement("schema_version")).fetchone() if state["has_version"] else None
    state["version"] = int(version[0]) if version else 0
    return state


def ensure_schema(conn: psycopg.Connection[Any], migrate: bool) -> str:
    """Create the tables when missing; with migrate, also bring an old shape up to date.

    Without migrate (a load), an old PharmChecker shape is refused rather than changed behind the
    user's back: the message says to run `pharmload init-db`.
    """
    state = schema_state(conn)
    if state["has_search_results"] and state["has_current_key"] and state["version"] >= SCHEMA_VERSION:
        return "current"
    # A change is due. Loads of other tags may be starting at this very moment on an empty database
    # (they raced to CREATE TYPE: 23505 on pg_type); the first to take this lock makes the change,
    # the others wait for its transaction to end and then find the schema as it left it.
    locks.try_take(conn, locks.SCHEMA_NAMESPACE, 0)
    state = schema_state(conn)
    if state["has_search_results"] and not state["has_current_key"]:
        if not migrate:
            raise DatabaseError("search_results has an old PharmChecker shape (other unique key, "
                                "JSON strings in meta/raw); run `pharmload init-db` to migrate it")
        conn.execute(statement("migrate_legacy"))
        conn.execute(statement("schema"))
        return "migrated"
    if not state["has_search_results"] or state["version"] < SCHEMA_VERSION:
        conn.execute(statement("schema"))
        return "created" if not state["has_search_results"] else "upgraded"
    return "current"


def ensure_database(admin_dsn: str, name: str) -> None:
    """CREATE DATABASE name unless it exists (embedded server: one database per purpose)."""
    with connect(admin_dsn, autocommit=True) as conn, translated():
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            # Another command started at the same moment may create it first.
            with suppress(psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def fetch_all(conn: psycopg.Connection[Any], name: str, params: dict[str, Any] | None = None
              ) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(statement(name), params)
        return cur.fetchall()
