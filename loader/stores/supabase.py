"""Screenshots in a Supabase Storage bucket, through the `supabase` client library.

Same content-addressed layout as the local store (`sha256/ab/cd/<hash>.png`), so an object that
exists is never uploaded again. What is already stored is asked once per run, in bulk (list-v2
pages of 1000 keys), never one request per file. Uploads run as many at a time as the server and
network bear (loader/stores/pacing.py: adaptive, up to --max-concurrent-uploads) over one HTTP client
whose connections are kept alive and reused, and are retried with backoff on 429, 5xx, timeouts and
dropped connections; one that still fails is reported, its rows load anyway, and the next run
uploads it.

HTTP/1.1, one kept-alive connection per request in flight, rather than HTTP/2 (storage3's own client
asks for HTTP/2): httpx negotiates HTTP/2 only over TLS, the real server in the test kit speaks plain
HTTP/1.1, so HTTP/2 could not be measured against it, and the measured latency hiding (benchmarks/
RESULTS.md) comes from reused connections plus the pacer, which HTTP/1.1 gives without it.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from loader.errors import ConfigError, StorageError
from loader.stores.local import StoredObject, storage_path
from loader.stores.pacing import Pacer

log = logging.getLogger("pharmload")
PREFIX = "sha256/"
PAGE = 1000
DELETE_BATCH = 1000  # keys per bulk removal: the Storage API's limit per request
THROTTLED_TRIES = 3
MAX_DELAY = 10.0  # seconds: the longest wait before a retry


def _status(exc: BaseException) -> int | None:
    """The HTTP status of a storage error, whichever form storage3 gives it in."""
    raw = getattr(exc, "status", None)
    try:
        return int(raw) if raw is not None else None
    except (TypeError, ValueError):
        return None


def _transient(exc: BaseException) -> bool:
    import httpx

    if isinstance(exc, httpx.TransportError):  # timeouts, refused or dropped connections
        return True
    status = _status(exc)
    return status is not None and (status == 429 or status >= 500)


def _no_bucket(exc: BaseException) -> bool:
    """Whether a storage error says the bucket does not exist (gc and status: nothing is stored)."""
    return "bucket not found" in str(exc).lower()


class SupabaseStore:
    """A bucket of screenshots; `storage_type` is what image_assets records for them."""

    storage_type = "supabase"
    partial_failures = True  # a failed upload is recorded as 'pending': image rows wait for the store

    def __init__(self, url: str, key: str, bucket: str, concurrency: int = 64, attempts: int = 4,
                 base_delay: float = 0.5, timeout: int = 30) -> None:
        if not url or not key:
            raise ConfigError("the supabase backend needs SUPABASE_URL and SUPABASE_SERVICE_KEY in the environment")
        import httpx
        from storage3 import SyncStorageClient

        # One client for the whole run, with a kept-alive connection for every request that may be in
        # flight (httpx keeps only 20 by default: the others would reconnect per request).
        self.http = httpx.Client(timeout=timeout, follow_redirects=True, limits=httpx.Limits(
            max_connections=concurrency + 2, max_keepalive_connections=concurrency + 2))
        self.storage = SyncStorageClient(f"{url.rstrip('/')}/storage/v1/",
                                         {"apiKey": key, "Authorization": f"Bearer {key}"}, http_client=self.http)
        self.bucket = bucket
        self.concurrency = concurrency
        self.pacer = Pacer(concurrency)
        self.attempts = attempts
        self.base_delay = base_delay
        self._known: set[str] | None = None
        self._sizes: dict[str, int | None] | None = None  # verify's listing
        self._lock = threading.Lock()
        self.retries = 0

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """fn with backoff and full jitter on transient faults; anything else raises at once. A 429
        says "later", not "broken": those get THROTTLED_TRIES times the attempts of other faults."""
        failures = throttled = 0
        while True:
            try:
                with self.pacer.slot(_transient):
                    return fn(*args, **kwargs)
            except Exception as exc:
                if not _transient(exc):
                    raise
                if _status(exc) == 429:
                    throttled += 1
                else:
                    failures += 1
                if failures >= self.attempts or throttled >= THROTTLED_TRIES * self.attempts:
                    raise
                with self._lock:
                    self.retries += 1
                tries = failures + throttled
                delay = random.uniform(0, min(MAX_DELAY, self.base_delay * 2 ** (tries - 1)))
                log.warning("storage %s: %s; retry %d of %d in %.1fs", what, str(exc)[:120], tries,
                            (THROTTLED_TRIES if throttled else 1) * self.attempts - 1, delay)
                time.sleep(delay)

    def ensure_bucket(self) -> None:
        """Create the bucket, private, when it does not exist."""
        try:
            self._call("get bucket", self.storage.get_bucket, self.bucket)
        except Exception as exc:
            if _status(exc) not in (400, 404) or "not found" not in str(exc).lower():
                raise StorageError(f"storage: cannot read bucket {self.bucket!r}: {exc}") from exc
            try:
                self._call("create bucket", self.storage.create_bucket, self.bucket, options={"public": False})
            except Exception as exc2:
                raise StorageError(f"storage: cannot create bucket {self.bucket!r}: {exc2}") from exc2

    def _list_all(self) -> dict[str, int | None]:
        """Every key under sha256/ with its size, one list-v2 page (1000 keys) per request."""
        keys: dict[str, int | None] = {}
        bucket = self.storage.from_(self.bucket)
        cursor: str | None = None
        while True:
            options: dict[str, Any] = {"prefix": PREFIX, "limit": PAGE}
            if cursor:
                options["cursor"] = cursor
            page = self._call("list", bucket.list_v2, options)
            for o in page.objects:
                size = (o.metadata or {}).get("size")
                keys[o.key or o.name] = int(size) if size is not None else None
            if not page.hasNext or not page.nextCursor:
                return keys
            cursor = page.nextCursor

    def missing(self, hashes: list[str]) -> list[str]:
        """The hashes not yet in the bucket; the bucket is listed once per run."""
        if not hashes:
            return []
        if self._known is None:
            try:
                self.ensure_bucket()
                self._known = set(self._list_all())
            except StorageError:
                raise
            except Exception as exc:
                raise StorageError(f"storage: cannot list bucket {self.bucket!r}: {exc}") from exc
        return [h for h in hashes if storage_path(h) not in self._known]

    def _upload(self, content_hash: str, src: str, content_type: str | None) -> None:
        with open(src, "rb") as f:
            data = f.read()
        self._call("upload", self.storage.from_(self.bucket).upload, storage_path(content_hash), data,
                   {"content-type": content_type or "application/octet-stream", "upsert": "true"})
        with self._lock:
            assert self._known is not None
            self._known.add(storage_path(content_hash))

    def store_many(self, items: Iterable[tuple[str, str, str | None]]) -> tuple[int, dict[str, str]]:
        """Upload the items (hash, source path, content type) the bucket lacks: (how many were
        uploaded, {hash: reason} for those that failed after the retries)."""
        todo = list(items)
        missing = set(self.missing([h for h, _, _ in todo]))
        todo = [item for item in todo if item[0] in missing]
        failed: dict[str, str] = {}

        def one(item: tuple[str, str, str | None]) -> None:
            try:
                self._upload(*item)
            except Exception as exc:  # reported per screenshot; the load goes on
                failed[item[0]] = f"{type(exc).__name__}: {str(exc)[:160]}"

        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="pharmload-upload") as pool:
            list(pool.map(one, todo))
        return len(todo) - len(failed), failed

    def sizes(self, hashes: list[str]) -> dict[str, int]:
        """Size of each stored screenshot, from one bulk listing per store (verify asks in batches);
        absent ones are left out."""
        if self._sizes is None:
            try:
                self._sizes = self._list_all()
            except Exception as exc:
                if _no_bucket(exc):
                    return {}
                raise StorageError(f"storage: cannot list bucket {self.bucket!r}: {exc}") from exc
        listing = self._sizes
        found: dict[str, int] = {}
        for h in hashes:
            size = listing.get(storage_path(h))
            if size is not None:
                found[h] = size
        return found

    def objects(self) -> Iterator[StoredObject]:
        """Every object under sha256/ with its size and when it was last put there (its updated_at:
        an upsert replaces the object), one list-v2 page (1000 keys) per request; none when the
        bucket does not exist."""
        bucket = self.storage.from_(self.bucket)
        cursor: str | None = None
        while True:
            options: dict[str, Any] = {"prefix": PREFIX, "limit": PAGE, **({"cursor": cursor} if cursor else {})}
            try:
                page = self._call("list", bucket.list_v2, options)
            except Exception as exc:
                if _no_bucket(exc):
                    return
                raise StorageError(f"storage: cannot list bucket {self.bucket!r}: {exc}") from exc
            for o in page.objects:
                size = (o.metadata or {}).get("size")
                yield StoredObject(o.key or o.name, int(size or 0), max(o.created_at, o.updated_at).timestamp())
            if not page.hasNext or not page.nextCursor:
                return
            cursor = page.nextCursor

    def delete(self, keys: list[str]) -> tuple[dict[str, int], dict[str, str]]:
        """Remove these objects in bulk requests of DELETE_BATCH keys, `concurrency` at a time, each
        retried like an upload: ({key: bytes freed} of those removed, {key: reason} of those whose
        request still failed). A key already gone, or whose bucket is, is neither."""
        bucket = self.storage.from_(self.bucket)
        removed: dict[str, int] = {}
        failed: dict[str, str] = {}

        def one(batch: list[str]) -> None:
            try:
                gone = self._call("remove", bucket.remove, batch)
            except Exception as exc:  # reported per key; the other batches go on
                if not _no_bucket(exc):
                    with self._lock:
                        failed.update(dict.fromkeys(batch, f"{type(exc).__name__}: {str(exc)[:160]}"))
                return
            asked = set(batch)
            with self._lock:
                removed.update((o["name"], int((o.get("metadata") or {}).get("size") or 0))
                               for o in gone if o.get("name") in asked)

        batches = [keys[i:i + DELETE_BATCH] for i in range(0, len(keys), DELETE_BATCH)]
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="pharmload-delete") as pool:
            list(pool.map(one, batches))
        return removed, failed

    def rehash(self, content_hash: str) -> str | None:
        """verify --deep: the SHA-256 of the object's bytes, downloaded (callers bound how many run at
        once); None when it cannot be downloaded."""
        bucket = self.storage.from_(self.bucket)
        try:
            data = self._call("download", bucket.download, storage_path(content_hash))
        except Exception as exc:
            log.warning("storage download %s: %s", content_hash[:12], str(exc)[:120])
            return None
        return hashlib.sha256(data).hexdigest()
