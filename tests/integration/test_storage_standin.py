"""Drive tests.support.storage_standin with the real supabase / storage3 client."""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from storage3.exceptions import StorageApiError
from supabase import ClientOptions, create_client

from tests.support.storage_standin import StorageStandin

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) + b"\r\n--\r\n\r\r\n"  # binary, CR/LF and dash noise
BUCKET = "imagecache"


def _storage(url: str, key: str, **options: Any) -> Any:
    # supabase always passes a timeout to storage3, which warns that it is deprecated.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        opts = ClientOptions(**options) if options else None
        return create_client(url, key, options=opts).storage


@pytest.fixture
def standin() -> Iterator[StorageStandin]:
    with StorageStandin() as s:
        yield s
        assert s.internal_errors == []


@pytest.fixture
def storage(standin: StorageStandin) -> Any:
    return _storage(standin.url, standin.service_key)


@pytest.fixture
def bucket(storage: Any) -> Any:
    storage.create_bucket(BUCKET, options={"public": False})
    return storage.from_(BUCKET)


def _raw(standin: StorageStandin, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"apikey": standin.service_key, "Authorization": f"Bearer {standin.service_key}"}
    headers.update(kwargs.pop("headers", {}))
    return httpx.request(method, f"{standin.url}/storage/v1/{path}", headers=headers, **kwargs)


# -- buckets -----------------------------------------------------------------------


def test_bucket_create_get_list(standin: StorageStandin, storage: Any) -> None:
    assert storage.create_bucket(BUCKET, options={"public": False}) == {"name": BUCKET}
    got = storage.get_bucket(BUCKET)
    assert (got.id, got.name, got.public) == (BUCKET, BUCKET, False)
    assert [b.id for b in storage.list_buckets()] == [BUCKET]
    assert standin.buckets[BUCKET]["public"] is False
    assert standin.requests == [
        ("POST", "/storage/v1/bucket"),
        ("GET", "/storage/v1/bucket/imagecache"),
        ("GET", "/storage/v1/bucket"),
    ]


def test_bucket_duplicate_and_missing(storage: Any) -> None:
    storage.create_bucket(BUCKET)
    with pytest.raises(StorageApiError) as dup:
        storage.create_bucket(BUCKET)
    assert (dup.value.status, dup.value.code, dup.value.message) == (
        "409",
        "Duplicate",
        "The resource already exists",
    )

    with pytest.raises(StorageApiError) as missing:
        storage.get_bucket("nope")
    assert (missing.value.status, missing.value.code, missing.value.message) == (
        "404",
        "Bucket not found",
        "Bucket not found",
    )
    # Like the real service, the HTTP status is 400; the logical status is in the body.
    cause = missing.value.__cause__
    assert isinstance(cause, httpx.HTTPStatusError)
    assert cause.response.status_code == 400
    assert cause.response.json() == {
        "statusCode": "404",
        "code": "NoSuchBucket",
        "error": "Bucket not found",
        "message": "Bucket not found",
    }


def test_bucket_update_empty_delete(standin: StorageStandin, storage: Any, bucket: Any) -> None:
    bucket.upload("a.png", PNG, {"content-type": "image/png"})
    assert storage.update_bucket(BUCKET, {"public": True}) == {"message": "Successfully updated"}
    assert standin.buckets[BUCKET]["public"] is True
    with pytest.raises(StorageApiError) as not_empty:
        storage.delete_bucket(BUCKET)
    assert not_empty.value.status == "409"
    assert storage.empty_bucket(BUCKET) == {"message": "Successfully emptied"}
    assert storage.delete_bucket(BUCKET) == {"message": "Successfully deleted"}
    assert standin.buckets == {}


# -- upload --------------------------------------------------------------------


def test_upload_upsert_and_duplicate(standin: StorageStandin, bucket: Any) -> None:
    key = "sha256/ab/ab12.png"
    res = bucket.upload(key, PNG, {"content-type": "image/png", "upsert": "true"})
    assert (res.path, res.full_path) == (key, f"{BUCKET}/{key}")
    assert standin.objects(BUCKET) == {key: PNG}
    meta = standin.object_meta(BUCKET, key)
    assert (meta["content_type"], meta["size"], meta["upload_count"]) == ("image/png", len(PNG), 1)
    assert meta["cache_control"] == "max-age=3600"

    with pytest.raises(StorageApiError) as dup:
        bucket.upload(key, b"other", {"content-type": "image/png"})
    assert (dup.value.status, dup.value.code) == ("409", "Duplicate")
    assert standin.objects(BUCKET)[key] == PNG  # untouched

    # "upsert": "false" is sent as x-upsert: false -> still a duplicate
    with pytest.raises(StorageApiError):
        bucket.upload(key, b"other", {"content-type": "image/png", "upsert": "false"})

    bucket.upload(key, b"v2", {"content-type": "image/webp", "upsert": "true"})
    meta = standin.object_meta(BUCKET, key)
    assert (meta["content_type"], meta["size"], meta["upload_count"]) == ("image/webp", 2, 2)
    assert standin.objects(BUCKET)[key] == b"v2"


def test_upsert_as_bool_fails_in_the_client(standin: StorageStandin, bucket: Any) -> None:
    # storage3 copies `upsert` into a header verbatim; httpx cannot encode a bool
    # (AttributeError: 'bool' object has no attribute 'encode').  Always pass "true".
    before = len(standin.requests)
    with pytest.raises((AttributeError, TypeError)):
        bucket.upload("x.png", PNG, {"content-type": "image/png", "upsert": True})
    assert len(standin.requests) == before  # nothing went on the wire


def test_update_overwrites_and_creates(standin: StorageStandin, bucket: Any) -> None:
    bucket.upload("a.png", b"one", {"content-type": "image/png"})
    bucket.update("a.png", b"two", {"content-type": "image/png"})
    bucket.update("new.png", b"three", {"content-type": "image/png"})
    assert standin.objects(BUCKET) == {"a.png": b"two", "new.png": b"three"}
    assert standin.count_requests("PUT") == 2


def test_default_content_type_and_raw_body(standin: StorageStandin, bucket: Any) -> None:
    bucket.upload("notes.txt", b"hello")
    assert standin.object_meta(BUCKET, "notes.txt")["content_type"] == "text/plain"
    # A raw (non-multipart) body takes its type and cache-control from the headers.
    resp = _raw(
        standin,
        "POST",
        f"object/{BUCKET}/raw/x.png",
        content=PNG,
        headers={"Content-Type": "image/png", "Cache-Control": "max-age=60"},
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["Key"] == f"{BUCKET}/raw/x.png"
    meta = standin.object_meta(BUCKET, "raw/x.png")
    assert (meta["content_type"], meta["cache_control"]) == ("image/png", "max-age=60")
    assert standin.objects(BUCKET)["raw/x.png"] == PNG


def test_upload_to_missing_bucket_and_bad_key(storage: Any, bucket: Any) -> None:
    with pytest.raises(StorageApiError) as missing:
        storage.from_("nope").upload("a.png", PNG, {"content-type": "image/png"})
    assert (missing.value.status, missing.value.code) == ("404", "Bucket not found")
    with pytest.raises(StorageApiError) as bad:
        bucket.upload("a#b.png", PNG, {"content-type": "image/png"})
    assert bad.value.status == "400"


def test_bucket_limits(storage: Any) -> None:
    storage.create_bucket("small", options={"file_size_limit": 10, "allowed_mime_types": ["image/*"]})
    small = storage.from_("small")
    small.upload("ok.png", b"123", {"content-type": "image/png"})
    with pytest.raises(StorageApiError) as big:
        small.upload("big.png", b"x" * 11, {"content-type": "image/png"})
    assert big.value.status == "413"
    with pytest.raises(StorageApiError) as mime:
        small.upload("a.txt", b"x", {"content-type": "text/plain"})
    assert mime.value.status == "415"


# -- read ------------------------------------------------------------------------


def test_download_info_exists(standin: StorageStandin, storage: Any, bucket: Any) -> None:
    key = "sha256/ab/ab34.png"
    bucket.upload(key, PNG, {"content-type": "image/png"})
    assert bucket.download(key) == PNG
    assert _raw(standin, "GET", f"object/authenticated/{BUCKET}/{key}").content == PNG

    info = bucket.info(key)
    assert (info["name"], info["bucket_id"], info["size"], info["content_type"]) == (
        key,
        BUCKET,
        len(PNG),
        "image/png",
    )
    assert bucket.exists(key) is True
    assert bucket.exists("sha256/ab/missing.png") is False
    with pytest.raises(StorageApiError) as missing:
        bucket.download("sha256/ab/missing.png")
    assert (missing.value.status, missing.value.code, missing.value.message) == (
        "404",
        "not_found",
        "Object not found",
    )
    with pytest.raises(StorageApiError):  # a missing bucket is not "object missing"
        storage.from_("nope").exists(key)
    assert standin.count_requests("HEAD") == 0
    assert standin.object_meta(BUCKET, key)["download_count"] == 2


def test_public_bucket_needs_no_credentials(standin: StorageStandin, storage: Any) -> None:
    storage.create_bucket("pub", options={"public": True})
    storage.from_("pub").upload("a.png", PNG, {"content-type": "image/png"})
    url = storage.from_("pub").get_public_url("a.png")
    assert url == f"{standin.url}/storage/v1/object/public/pub/a.png"
    resp = httpx.get(url)
    assert (resp.status_code, resp.content, resp.headers["content-type"]) == (200, PNG, "image/png")

    storage.create_bucket("priv")
    storage.from_("priv").upload("a.png", PNG, {"content-type": "image/png"})
    assert httpx.get(storage.from_("priv").get_public_url("a.png")).status_code == 400


# -- listing -------------------------------------------------------------------------


def _seed(bucket: Any) -> None:
    for key in [
        "sha256/ab/ab01.png",
        "sha256/ab/ab02.png",
        "sha256/ab/AB03.png",
        "sha256/ab/deep/x.png",
        "sha256/ac/ac01.png",
        "sha256/top.png",
        "root.png",
    ]:
        bucket.upload(key, key.encode(), {"content-type": "image/png"})


def test_list_folder(bucket: Any) -> None:
    _seed(bucket)
    rows = bucket.list("sha256/ab")  # no trailing slash: still the folder sha256/ab/
    assert [r["name"] for r in rows] == ["ab01.png", "ab02.png", "AB03.png", "deep"]
    files = [r for r in rows if r["id"] is not None]
    assert all(r["metadata"]["mimetype"] == "image/png" for r in files)
    assert files[0]["metadata"]["size"] == len(b"sha256/ab/ab01.png")
    deep = rows[-1]
    assert deep["id"] is None and deep["metadata"] is None

    assert [r["name"] for r in bucket.list()] == ["root.png", "sha256"]
    assert [r["name"] for r in bucket.list("sha256")] == ["ab", "ac", "top.png"]


def test_list_search_limit_offset_sort(bucket: Any) -> None:
    _seed(bucket)
    # `search` is a case-insensitive name prefix inside the folder
    assert [r["name"] for r in bucket.list("sha256/ab", {"search": "ab0"})] == [
        "ab01.png",
        "ab02.png",
        "AB03.png",
    ]
    assert [r["name"] for r in bucket.list("sha256/ab", {"search": "ab02"})] == ["ab02.png"]
    assert bucket.list("sha256/ab", {"search": "zz"}) == []
    assert bucket.list("sha256/a") == []  # a partial name is not a prefix match here
    page1 = bucket.list("sha256/ab", {"limit": 2, "offset": 0})
    page2 = bucket.list("sha256/ab", {"limit": 2, "offset": 2})
    assert [r["name"] for r in page1 + page2] == ["ab01.png", "ab02.png", "AB03.png", "deep"]
    desc = bucket.list("sha256/ab", {"sortBy": {"column": "name", "order": "desc"}})
    assert [r["name"] for r in desc] == ["deep", "AB03.png", "ab02.png", "ab01.png"]


def test_list_missing_bucket_is_empty(storage: Any) -> None:
    assert storage.from_("nope").list("x") == []


def test_list_v2_prefix_and_cursor(standin: StorageStandin, bucket: Any) -> None:
    _seed(bucket)
    res = bucket.list_v2({"prefix": "sha256/a"})  # a plain key prefix, recursive
    assert [o.name for o in res.objects] == [
        "sha256/ab/AB03.png",
        "sha256/ab/ab01.png",
        "sha256/ab/ab02.png",
        "sha256/ab/deep/x.png",
        "sha256/ac/ac01.png",
    ]
    assert res.hasNext is False and res.folders == []

    seen: list[str] = []
    cursor: str | None = None
    while True:
        opts: dict[str, Any] = {"prefix": "sha256/", "limit": 2}
        if cursor:
            opts["cursor"] = cursor
        page = bucket.list_v2(opts)
        seen += [o.name for o in page.objects]
        if not page.hasNext:
            break
        cursor = page.nextCursor
    assert len(seen) == 6 and seen == sorted(seen)

    delim = bucket.list_v2({"prefix": "sha256/", "with_delimiter": True})
    assert [(f.key, f.name) for f in delim.folders] == [("ab", "sha256/ab/"), ("ac", "sha256/ac/")]
    assert [o.name for o in delim.objects] == ["sha256/top.png"]


# -- removal -------------------------------------------------------------------------


def test_remove(standin: StorageStandin, bucket: Any) -> None:
    _seed(bucket)
    deleted = bucket.remove(["sha256/ab/ab01.png", "sha256/ab/nope.png", "root.png"])
    assert sorted(d["name"] for d in deleted) == ["root.png", "sha256/ab/ab01.png"]
    assert all(d["bucket_id"] == BUCKET for d in deleted)
    assert "root.png" not in standin.objects(BUCKET)
    assert bucket.remove(["nope"]) == []


def test_move_and_copy(standin: StorageStandin, bucket: Any) -> None:
    bucket.upload("a.png", PNG, {"content-type": "image/png"})
    assert bucket.copy("a.png", "b.png")["Key"] == f"{BUCKET}/b.png"
    assert bucket.move("a.png", "c.png") == {"message": "Successfully moved"}
    assert standin.objects(BUCKET) == {"b.png": PNG, "c.png": PNG}


# -- auth ----------------------------------------------------------------------------


def test_wrong_apikey_rejected_by_gateway(standin: StorageStandin) -> None:
    standin.create_bucket(BUCKET)
    wrong = _storage(standin.url, "not-the-key")
    with pytest.raises(StorageApiError) as exc:
        wrong.get_bucket(BUCKET)
    assert (exc.value.status, exc.value.code) == (401, "InternalError")
    assert "Invalid API key" in exc.value.message
    resp = httpx.get(f"{standin.url}/storage/v1/bucket")
    assert resp.status_code == 401


def test_wrong_bearer_rejected_by_storage(standin: StorageStandin) -> None:
    standin.create_bucket(BUCKET)
    storage = _storage(standin.url, standin.service_key, headers={"Authorization": "Bearer some.other.token"})
    with pytest.raises(StorageApiError) as exc:
        storage.from_(BUCKET).list()
    assert (exc.value.status, exc.value.code, exc.value.message) == (
        "403",
        "Unauthorized",
        "invalid signature",
    )


# -- faults --------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 500, 503])
def test_injected_status_then_recovery(standin: StorageStandin, bucket: Any, status: int) -> None:
    standin.inject(status=status)
    with pytest.raises(StorageApiError) as exc:
        bucket.upload("a.png", PNG, {"content-type": "image/png"})
    assert exc.value.status == str(status)
    cause = exc.value.__cause__
    assert isinstance(cause, httpx.HTTPStatusError) and cause.response.status_code == status
    assert standin.objects(BUCKET) == {}  # a faulted request has no effect
    bucket.upload("a.png", PNG, {"content-type": "image/png"})  # the next one succeeds
    assert standin.objects(BUCKET) == {"a.png": PNG}


def test_injected_match_and_times(standin: StorageStandin, bucket: Any) -> None:
    standin.inject(status=500, times=2, match="/object/list/")
    bucket.upload("a.png", PNG, {"content-type": "image/png"})  # not matched
    for _ in range(2):
        with pytest.raises(StorageApiError):
            bucket.list()
    assert [r["name"] for r in bucket.list()] == ["a.png"]
    standin.inject(status=500, match="POST /storage/v1/object/list")
    standin.reset_faults()
    assert standin.pending_faults == 0
    bucket.list()


def test_injected_unparsable_body(standin: StorageStandin, bucket: Any) -> None:
    standin.inject(status=502, body=b"<html>Bad Gateway</html>")
    with pytest.raises(StorageApiError) as exc:
        bucket.list()
    assert (exc.value.status, exc.value.code) == (502, "InternalError")


def test_injected_drop(standin: StorageStandin, bucket: Any) -> None:
    bucket.upload("a.png", PNG, {"content-type": "image/png"})  # warm a keep-alive connection
    standin.inject(drop=True)
    with pytest.raises(httpx.TransportError):
        bucket.download("a.png")
    assert bucket.download("a.png") == PNG


def test_injected_delay(standin: StorageStandin, bucket: Any) -> None:
    standin.inject(delay=0.5, match="/object/list/")
    start = time.monotonic()
    assert bucket.list() == []
    assert time.monotonic() - start >= 0.5
    start = time.monotonic()
    bucket.list()
    assert time.monotonic() - start < 0.5


def test_injected_delay_past_client_timeout(standin: StorageStandin) -> None:
    standin.create_bucket(BUCKET)
    with httpx.Client(timeout=0.3) as http:
        storage = _storage(standin.url, standin.service_key, httpx_client=http)
        standin.inject(delay=1.0)
        with pytest.raises(httpx.ReadTimeout):
            storage.from_(BUCKET).list()
        assert storage.from_(BUCKET).list() == []


# -- concurrency & bookkeeping -------------------------------------------------------


def test_concurrent_uploads(standin: StorageStandin, bucket: Any) -> None:
    keys = [f"sha256/{i:02x}/{i:064x}.png" for i in range(64)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda k: bucket.upload(k, k.encode(), {"content-type": "image/png"}), keys))
    assert standin.objects(BUCKET) == {k: k.encode() for k in keys}
    assert standin.count_requests("POST", "/object/imagecache/") == 64
    standin.clear_requests()
    assert standin.requests == []


def test_stop_is_clean_and_restartable() -> None:
    s = StorageStandin()
    s.start()
    url = s.url
    storage = _storage(url, s.service_key)
    storage.create_bucket(BUCKET)  # leaves a keep-alive connection open
    s.stop()
    with pytest.raises(httpx.TransportError):
        storage.list_buckets()
    with pytest.raises(RuntimeError):
        _ = s.url
    s.start()
    try:
        assert s.url != "" and s.buckets[BUCKET]["id"] == BUCKET  # state survives a restart
    finally:
        s.stop()
