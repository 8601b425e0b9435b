"""The Supabase store's uploads against the real Storage server, through the fault proxy: the number
of requests in flight grows when the network is slow, and shrinks when the server says slow down,
without losing a screenshot either way."""

from __future__ import annotations

import hashlib
from pathlib import Path

from loader.stores.supabase import SupabaseStore
from tests.support.faultproxy import FaultProxy
from tests.support.storage_kit import StorageServer


def shots(folder: Path, n: int) -> list[tuple[str, str, str | None]]:
    folder.mkdir()
    items: list[tuple[str, str, str | None]] = []
    for i in range(n):
        data = f"screenshot {i}".encode() * 40
        path = folder / f"{i}.png"
        path.write_bytes(data)
        items.append((hashlib.sha256(data).hexdigest(), str(path), "image/png"))
    return items


def in_bucket(server: StorageServer, bucket: str) -> set[str]:
    store = SupabaseStore(server.url, server.key, bucket)
    return {o.key.rsplit("/", 1)[-1].removesuffix(".png") for o in store.objects()}


def test_more_uploads_at_a_time_when_each_request_is_slow(storage_server: StorageServer, bucket_name: str,
                                                          tmp_path: Path) -> None:
    items = shots(tmp_path / "shots", 300)
    with FaultProxy(storage_server.storage_url, latency=0.05) as proxy:
        store = SupabaseStore(proxy.url, storage_server.key, bucket_name, concurrency=32)
        stored, failed = store.store_many(items)
    assert (stored, failed) == (300, {})
    assert store.pacer.peak >= 16 and store.pacer.backoffs == 0
    assert in_bucket(storage_server, bucket_name) == {h for h, _, _ in items}


def test_fewer_at_a_time_when_the_server_refuses_and_none_lost(storage_server: StorageServer, bucket_name: str,
                                                               tmp_path: Path) -> None:
    items = shots(tmp_path / "shots", 300)
    with FaultProxy(storage_server.storage_url, latency=0.02, rate_limit=60) as proxy:
        store = SupabaseStore(proxy.url, storage_server.key, bucket_name, concurrency=32, attempts=6,
                              base_delay=0.2)
        stored, failed = store.store_many(items)
        refused = proxy.count("POST", f"/object/{bucket_name}/", 429)
    assert (stored, failed) == (300, {})
    assert refused > 0 and store.pacer.backoffs > 0 and store.pacer.limit < 32
    assert in_bucket(storage_server, bucket_name) == {h for h, _, _ in items}
