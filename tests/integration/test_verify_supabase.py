"""`pharmload verify` and `load --verify-writes` on the Supabase backend, against the real Storage
server behind our proxy (which counts the requests): the bucket is listed once, and only --deep
downloads objects."""

from __future__ import annotations

from pathlib import Path

from loader.commands import verify
from loader.run import pipeline
from loader.settings import Settings
from loader.stores import image_store
from tests.conftest import query
from tests.integration.test_supabase import corpus, supa_dsn, through
from tests.support.faultproxy import FaultProxy
from tests.support.lifecycle import stored
from tests.support.storage_kit import StorageServer

__all__ = ["corpus", "supa_dsn"]  # fixtures used here


def test_verify_lists_the_bucket_once_and_deep_finds_replaced_bytes(
        settings: Settings, supa_dsn: str, storage_server: StorageServer, fault_proxy: FaultProxy,
        bucket_name: str, corpus: Path) -> None:
    s = through(settings, fault_proxy, storage_server, bucket_name, supa_dsn, corpus)
    pipeline.run(s)
    rows = query(supa_dsn, "SELECT count(*) FROM search_results")[0][0]
    shots = query(supa_dsn, "SELECT count(DISTINCT image_hash) FROM search_results")[0][0]
    check = s.replace(command="verify", max_workers=1)
    fault_proxy.clear_requests()
    section = verify.run(check)
    assert section["result"] == "ok", section
    assert (section["checked"], section["images_checked"]) == (rows, shots)
    assert fault_proxy.count("POST", "/object/list-v2/") == 1  # one listing, not one request per object
    assert fault_proxy.count("GET", "/object/") == 0  # nothing downloaded without --deep

    objects = stored(s)
    victim = sorted(objects)[0]
    files = image_store(s).storage.from_(bucket_name)  # type: ignore[union-attr]
    files.update(victim, b"X" * len(objects[victim]), {"content-type": "image/png"})
    assert verify.run(check)["result"] == "ok"  # same size: only re-hashing tells
    fault_proxy.clear_requests()
    deep = verify.run(check.replace(deep=True))
    assert deep["result"] == "mismatch"
    name = victim.rsplit("/", 1)[1].removesuffix(".png")
    assert deep["mismatches"] == [{"image": name, "problem": "stored bytes do not hash to their name "
                                                            "(or cannot be read)"}]
    assert fault_proxy.count("GET", "/object/") == shots


def test_a_deleted_object_and_an_unchanged_rerun_with_verify_writes(
        settings: Settings, supa_dsn: str, storage_server: StorageServer, fault_proxy: FaultProxy,
        bucket_name: str, corpus: Path) -> None:
    s = through(settings, fault_proxy, storage_server, bucket_name, supa_dsn, corpus)
    first = pipeline.run(s.replace(verify_writes="on"))
    assert first.verify["result"] == "ok" and first.verify["checked"] > 0
    again = pipeline.run(s.replace(verify_writes="on"))
    assert again.files_loaded == 0 and again.files_skipped > 0  # nothing parsed: digests from the sidecar
    assert (again.verify["checked"], again.verify["images_checked"]) == (
        first.verify["checked"], first.verify["images_checked"])
    victim = sorted(stored(s))[0]
    image_store(s).delete([victim])
    section = verify.run(s.replace(command="verify", max_workers=1))
    assert section["result"] == "mismatch"
    assert [m["problem"] for m in section["mismatches"]] == ["not in the store (supabase)"]
