"""`pharmload gc`: delete the screenshots no dataset references, from the database and the store.

Two kinds of garbage: image_assets rows that no search_results row references (any dataset: a
dropped tag, or searches that lost "newest wins") with their store objects; and store objects that
have no image_assets row at all (a load that crashed before its commit stored them), once they are
older than --grace.

It must never delete a screenshot that a running load is about to reference (the load found it in
the store and so did not store it again). Loads hold a shared advisory lock from before they ask the
store anything until they commit; gc takes it exclusively (db/locks.py) before it decides what to
delete, and keeps it until its deletions from the store are done and the row deletions committed.
So while gc decides and deletes, no load is between "found in the store" and "committed", and a
load that starts afterwards finds the object gone and stores it again. The store is listed before
the lock (a big bucket takes a while to list, and loads may go on meanwhile): an object stored
after the listing is simply not considered, and whether a listed object has a row is asked under
the lock. The grace period is a second line of defence for what the lock cannot see (a load of an
older pharmload, or of another database sharing the store).

Row deletions commit even when some object deletions fail: those objects then have no row, and
the next gc removes them. A crash between the two leaves unreferenced rows whose object is gone,
which is harmless: a load decides what to store by asking the store, never the rows.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loader.commands.record import recorded
from loader.db.cleanup import CleanupTransaction
from loader.db.target import database
from loader.errors import retry
from loader.metrics import write_cleanup_metrics
from loader.settings import Settings
from loader.stores import image_store
from loader.stores.local import StoredObject, storage_path

if TYPE_CHECKING:
    from loader.stores import Store

KEY = re.compile(r"sha256/([0-9a-f]{2})/([0-9a-f]{2})/([0-9a-f]{64})\.png")
LEFTOVER = re.compile(r"sha256/[0-9a-f]{2}/[0-9a-f]{2}/\.[^/]+")  # a local copy's temporary file
MAX_LISTED = 5


@dataclass
class Outcome:
    """What a gc removed (a dry run: would remove)."""

    store: str
    dry_run: bool
    grace_seconds: float
    status: str = "running"
    rows_removed: int = 0           # image_assets rows no search_results row referenced
    objects_removed: int = 0        # store objects: those rows' and the row-less ones
    bytes_removed: int = 0
    rowless_removed: int = 0        # of the objects: those without any image_assets row
    rowless_kept: int = 0           # objects without a row, younger than the grace period
    rows_left: int = 0              # unreferenced rows of another store or path, left alone
    failed: dict[str, str] = field(default_factory=dict)  # object key -> why it could not be deleted
    error: str | None = None
    elapsed: float = 0.0

    def render(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        lines = [f"gc of {self.store}: {verb} {self.rows_removed:,} screenshot rows no search result references, "
                 f"{self.objects_removed:,} store objects ({size_text(self.bytes_removed)}), of which "
                 f"{self.rowless_removed:,} had no row"]
        if self.rowless_kept:
            lines.append(f"  kept {self.rowless_kept:,} objects without a row that are younger than the grace "
                         f"period ({self.grace_seconds / 3600:g}h): a load may still be storing them")
        if self.rows_left:
            lines.append(f"  left alone {self.rows_left:,} unreferenced rows of another store or storage path")
        if self.failed:
            lines.append(f"  {len(self.failed):,} objects could not be deleted; the next gc tries again:")
            lines += [f"    {k}: {why}" for k, why in list(self.failed.items())[:MAX_LISTED]]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["failed"] = dict(list(self.failed.items())[:MAX_LISTED])
        data["failed_count"] = len(self.failed)
        return data


def size_text(n: int) -> str:
    """A byte count for people: 1,234 bytes, 56.7 MB."""
    if n < 1024:
        return f"{n:,} bytes"
    value = float(n)
    for unit in ("KB", "MB", "GB", "TB"):
        value /= 1024
        if value < 1024 or unit == "TB":
            break
    return f"{value:,.1f} {unit}"


def store_name(settings: Settings) -> str:
    """The store, as a person recognises it (no secret in it)."""
    if settings.backend == "supabase":
        return f"bucket {settings.bucket} at {settings.supabase_url}"
    return f"folder {settings.image_dir}"


def gc(settings: Settings) -> Outcome:
    """Collect the garbage of settings' database and store; writes --report-json and --metrics-file,
    failed or not. Objects that could not be deleted are in the outcome's `failed` (status
    "incomplete"): everything else was removed and committed."""
    out = Outcome(store_name(settings), settings.dry_run, settings.grace_seconds)

    def metrics(path: Path) -> None:
        write_cleanup_metrics(path, "gc", out.status == "ok", time.time(), rows={"image_assets": out.rows_removed},
                              objects=out.objects_removed, removed_bytes=out.bytes_removed)

    with recorded(settings, out, metrics):
        store = image_store(settings)
        listing = list(store.objects())
        with database(settings) as dsn:
            retry(lambda: _attempt(settings, dsn, store, listing, out), attempts=settings.retries,
                  base_delay=settings.retry_delay, what="gc")
        out.status = "dry-run" if settings.dry_run else "incomplete" if out.failed else "ok"
    return out


def _attempt(settings: Settings, dsn: str, store: Store, listing: list[StoredObject], out: Outcome) -> None:
    """One try: lock, delete the unreferenced rows, find the row-less objects, delete the objects,
    commit. The store's counts add up over tries (a retried try finds those objects gone)."""
    tx = CleanupTransaction(dsn, settings.secrets)
    try:
        if not tx.has_schema():
            return  # no pharmload tables: the store may well belong to another database
        tx.lock_gc(settings.lock_wait)
        hashed = {m[3]: o for o in listing if (m := KEY.fullmatch(o.key)) and m[3].startswith(m[1] + m[2])}
        rowless = tx.rowless(sorted(hashed))  # asked before collect() deletes rows
        rows = tx.collect(store.storage_type)
        old_enough = time.time() - settings.grace_seconds
        expired = {h for h in rowless if hashed[h].stored_at <= old_enough}
        leftovers = [o.key for o in listing if LEFTOVER.fullmatch(o.key) and o.stored_at <= old_enough]
        doomed = {storage_path(h) for h, _, _ in rows} | {storage_path(h) for h in expired} | set(leftovers)
        out.rows_removed, out.rows_left = len(rows), tx.image_counts()["unreferenced"]
        out.rowless_kept = len(rowless) - len(expired)
        if settings.dry_run:
            sizes = {o.key: o.size for o in listing}
            out.objects_removed = sum(k in sizes for k in doomed)
            out.bytes_removed = sum(sizes.get(k, 0) for k in doomed)
            out.rowless_removed = len(expired) + len(leftovers)
            return
        removed, failed = store.delete(sorted(doomed))
        out.objects_removed += len(removed)
        out.bytes_removed += sum(removed.values())
        out.rowless_removed += sum(storage_path(h) in removed for h in expired) + sum(k in removed for k in leftovers)
        out.failed = failed
        tx.commit()
    finally:
        tx.close()
