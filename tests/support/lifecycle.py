"""For the drop and gc tests: scrape folders whose screenshots overlap, garbage made dangerous on
purpose, a gc racing a load, and the checks they end with. Local store or Supabase alike."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from loader.commands import drop, gc
from loader.run import pipeline, stream
from loader.settings import Settings
from loader.stores import image_store
from loader.stores.local import storage_path
from tests.conftest import query
from tests.scrape import Scrape, document, png


def shot(i: int) -> bytes:
    """The bytes of screenshot number i: the same number in two folders is the same screenshot."""
    return png(filler=f"screenshot-{i}".encode() * 50)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def folder(scrape: Scrape, name: str, shots: range | list[int], ts: str = "2025-08-03T10:00:00") -> Path:
    """A states folder `name` with one search per screenshot number (pharmacy P<i>)."""
    for i in shots:
        scrape.search(f"{name}/PA/P{i}_01", document(name=f"P{i}", ts=ts), image=False)
        scrape.raw(f"{name}/PA/P{i}_01.png", shot(i))
    return scrape.root / name


def local_objects(image_dir: Path) -> dict[str, bytes]:
    """The local store's objects by key (temporary files included)."""
    top = image_dir / "sha256"
    return {str(p.relative_to(image_dir)): p.read_bytes() for p in sorted(top.rglob("*")) if p.is_file()}


def stored(settings: Settings) -> dict[str, bytes]:
    """The objects of the settings' store by key: the local folder's, or the bucket's (downloaded)."""
    if settings.backend != "supabase":
        return local_objects(settings.image_dir)
    store = image_store(settings)
    files = store.storage.from_(settings.bucket)  # type: ignore[union-attr]
    return {o.key: files.download(o.key) for o in store.objects()}


def keys(numbers: range | list[int] | set[int]) -> set[str]:
    """The store keys of these screenshot numbers."""
    return {storage_path(digest(shot(i))) for i in numbers}


def tag_rows(dsn: str, tag: str) -> list[tuple[Any, ...]]:
    """Everything of one tag a user looks at (without ids and clock times)."""
    return query(dsn, """
        SELECT search_name, search_state, search_ts, license_number, license_status, license_name, license_type,
               address, city, state, zip, issue_date, expiration_date, result_status, meta, raw, image_hash
        FROM search_results r JOIN datasets d ON d.id = r.dataset_id WHERE d.tag = %s
        ORDER BY 1, 2, 4 NULLS FIRST""", (tag,))


def image_rows(dsn: str) -> set[str]:
    return {h for (h,) in query(dsn, "SELECT content_hash FROM image_assets")}


def dangling(dsn: str, objects: dict[str, bytes]) -> list[str]:
    """Every screenshot a search result references that lacks its image_assets row or its store object
    with the right bytes (empty when all is well)."""
    problems = []
    refs = query(dsn, """SELECT DISTINCT r.image_hash, a.content_hash IS NOT NULL FROM search_results r
                         LEFT JOIN image_assets a ON a.content_hash = r.image_hash
                         WHERE r.image_hash IS NOT NULL""")
    for h, has_row in refs:
        data = objects.get(storage_path(h))
        if not has_row:
            problems.append(f"{h}: no image_assets row")
        if data is None:
            problems.append(f"{h}: not in the store")
        elif digest(data) != h:
            problems.append(f"{h}: the store holds other bytes")
    return problems


def collect(settings: Settings, **changes: Any) -> gc.Outcome:
    """A gc with these settings (and changes)."""
    return gc.gc(settings.replace(command="gc", states_dir=None, **changes))


def garbage_and_tree(settings: Settings, scrape: Scrape, n: int, first: int) -> Settings:
    """Screenshots first..first+n-1 left as garbage by a dropped tag; a tree of the second half of them
    and n/2 new ones; objects without a row planted for half of the new ones (a crashed load's). The
    settings of the tree's load."""
    old, new = range(first, first + n), range(first + n // 2, first + n + n // 2)
    pipeline.run(settings.replace(states_dir=folder(scrape, f"old{first}", old), tag=f"old{first}"))
    drop.drop(settings.replace(command="drop", tag=f"old{first}"), lambda plan: True)
    tree = folder(scrape, f"new{first}", new)
    crashed = range(first + n, first + n + n // 4)
    image_store(settings).store_many((digest(shot(i)), str(tree / f"PA/P{i}_01.png"), "image/png") for i in crashed)
    return settings.replace(states_dir=tree, tag=f"new{first}")


def gc_while_storing(monkeypatch: pytest.MonkeyPatch, settings: Settings, patience: float = 1.0) -> dict[str, Any]:
    """Have the load start a gc once it has put its screenshots into the store (and found the shared
    ones there already), and give that gc `patience` seconds to finish before the load goes on (a gc
    that waits for the load's lock never does: keep it short then). Returns what happened: the gc's
    thread, whether it was still running after that wait, and its outcome."""
    seen: dict[str, Any] = {}
    real = stream.checkpoint

    def at(s: Settings, name: str) -> None:
        real(s, name)
        if name == "storing" and not seen:
            seen["thread"] = threading.Thread(target=lambda: seen.setdefault("outcome", collect(settings)))
            seen["thread"].start()
            seen["thread"].join(patience)
            seen["waited"] = seen["thread"].is_alive()

    monkeypatch.setattr(stream, "checkpoint", at)
    return seen


def race(settings: Settings, load: Settings, delay: float) -> list[str]:
    """A load and a gc (settings) started `delay` seconds apart (the gc first when negative); what is
    dangling after both."""
    errors: list[BaseException] = []

    def run(fn: Callable[[], object], wait: float) -> threading.Thread:
        def body() -> None:
            try:
                threading.Event().wait(wait)
                fn()
            except BaseException as exc:  # reported by the test
                errors.append(exc)

        thread = threading.Thread(target=body)
        thread.start()
        return thread

    threads = [run(lambda: pipeline.run(load), max(0.0, -delay)), run(lambda: collect(settings), max(0.0, delay))]
    for t in threads:
        t.join(120)
    assert not errors, errors
    return dangling(load.dsn, stored(settings))
