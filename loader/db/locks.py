"""The advisory locks that keep loads, drops and gc apart, all held until a transaction ends.

- (merge.LOCK_NAMESPACE, hashtext(tag)), exclusive: a load of the tag, or a drop of it. Two loads of
  one tag, or a load and a drop of it, never overlap.
- (SCHEMA_NAMESPACE, 0), exclusive: only while a command finds the schema missing or old, from then
  until its transaction ends; concurrent first loads of different tags create it once, in turn.
- (GC_NAMESPACE, 0): shared by every load, from its begin() (before it asks the image store anything)
  to its commit; exclusive by gc, from before it decides what to delete until its deletions are
  done. So a screenshot a load found in the store, and will reference, cannot be collected while
  the load runs, and a load never starts while gc deletes (it waits, or with --lock-wait fail, fails).

PostgreSQL queues a lock request behind a conflicting one that waits, so loads that start while
gc waits for the running ones queue behind gc, and gc is never starved.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from psycopg import sql

from loader.errors import LockBusyError

log = logging.getLogger("pharmload")
GC_NAMESPACE = 0x70686763  # "phgc": apart from the tags' keys, which are hashes in their own namespace
SCHEMA_NAMESPACE = 0x70687363  # "phsc", key 0: held (exclusive) by whoever creates or upgrades the schema


def try_take(conn: psycopg.Connection[Any], namespace: int, key: str | int, *, shared: bool = False,
             wait: bool = True) -> bool:
    """Take the lock (namespace, key) for the rest of the transaction; a str key is hashed with
    hashtext. Without wait, False when another session holds it in a conflicting mode."""
    fn = "pg_advisory_xact_lock" + ("_shared" if shared else "")
    if not wait:
        fn = fn.replace("pg_advisory", "pg_try_advisory")
    key_sql = sql.SQL("hashtext(%s)") if isinstance(key, str) else sql.SQL("%s")
    row = conn.execute(sql.SQL("SELECT {}(%s, {})").format(sql.Identifier(fn), key_sql), (namespace, key)).fetchone()
    return wait or (row is not None and row[0] is True)


def take(conn: psycopg.Connection[Any], namespace: int, key: str | int, *, wait: bool, busy: str,
         waiting: str) -> None:
    """Take an exclusive lock: at once if free; else wait for it (saying so in the log) or, without
    wait, raise LockBusyError(busy)."""
    if try_take(conn, namespace, key, wait=False):
        return
    if not wait:
        raise LockBusyError(busy)
    log.info("%s", waiting)
    try_take(conn, namespace, key, wait=True)
