"""`pharmload verify` and `load --verify-writes` on the Supabase backend: the bucket is listed once,
and only --deep downloads objects (with bounded concurrency)."""

from __future__ import annotations

from pathlib import Path

from loader.commands import verify
from loader.run import pipeline
from loader.settings import Settings
from loader.stores import image_store
from tests.conftest import query
from tests.integration.test_supabase import BUCKET, corpus, standin, supa_dsn, supabase_settings
from tests.support.storage_standin import StorageStandin

__all__ = ["corpus", "standin", "supa_dsn"]  # fixtures used here


def test_verify_lists_the_bucket_once_and_deep_finds_replaced_bytes(
        settings: Settings, supa_dsn: str, standin: StorageStandin, corpus: Path) -> None:
    s = supabase_settings(settings, supa_dsn, standin, corpus)
    pipeline.run(s)
    rows = query(supa_dsn, "SELECT count(*) FROM search_results")[0][0]
    shots = query(supa_dsn, "SELECT count(DISTINCT image_hash) FROM search_results")[0][0]
    check = s.replace(command="verify", max_workers=1)
    standin.clear_requests()
    section = verify.run(check)
    assert section["result"] == "ok", section
    assert (section["checked"], section["images_checked"]) == (rows, shots)
    assert standin.count_requests("POST", "/object/list-v2/") == 1  # one listing, not one request per object
    assert standin.count_requests("GET", "/object/") == 0  # nothing downloaded without --deep

    victim = sorted(standin.objects(BUCKET))[0]
    standin.put_object(BUCKET, victim, b"X" * len(standin.objects(BUCKET)[victim]), content_type="image/png")
    assert verify.run(check)["result"] == "ok"  # same size: only re-hashing tells
    standin.clear_requests()
    deep = verify.run(check.replace(deep=True))
    assert deep["result"] == "mismatch"
    name = victim.rsplit("/", 1)[1].removesuffix(".png")
    assert deep["mismatches"] == [{"image": name, "problem": "stored bytes do not hash to their name "
                                                            "(or cannot be read)"}]
    assert standin.count_requests("GET", "/object/") == shots


def test_a_deleted_object_and_an_unchanged_rerun_with_verify_writes(
        settings: Settings, supa_dsn: str, standin: StorageStandin, corpus: Path) -> None:
    s = supabase_settings(settings, supa_dsn, standin, corpus)
    first = pipeline.run(s.replace(verify_writes="on"))
    assert first.verify["result"] == "ok" and first.verify["checked"] > 0
    again = pipeline.run(s.replace(verify_writes="on"))
    assert again.files_loaded == 0 and again.files_skipped > 0  # nothing parsed: digests from the sidecar
    assert (again.verify["checked"], again.verify["images_checked"]) == (
        first.verify["checked"], first.verify["images_checked"])
    victim = sorted(standin.objects(BUCKET))[0]
    image_store(s).delete([victim])
    section = verify.run(s.replace(command="verify", max_workers=1))
    assert section["result"] == "mismatch"
    assert [m["problem"] for m in section["mismatches"]] == ["not in the store (supabase)"]
