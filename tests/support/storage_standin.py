"""A loopback stand-in for the Supabase Storage HTTP API (standard library only).

It speaks the same wire protocol as the hosted Storage service closely enough for
the real ``supabase`` / ``storage3`` client to work against it unpatched::

    with StorageStandin() as standin:
        client = supabase.create_client(standin.url, standin.service_key)
        client.storage.create_bucket("imagecache", options={"public": False})

Behaviour copied from supabase/storage (the server) rather than invented:

* Every route lives under ``/storage/v1``.
* Error bodies are the Storage envelope
  ``{"statusCode": "404", "code": "NoSuchKey", "error": "not_found", "message": "Object not found"}``.
  As in the real service, the HTTP status of a Storage error is **400** unless the
  error is a 500: "Object not found", "Bucket not found" and "Duplicate" all come back
  as HTTP 400, with the logical status (as a string) in the body's ``statusCode``.
  ``storage3`` builds ``StorageApiError(message, error, statusCode)`` from that body,
  so ``exc.status == "404"`` / ``"409"`` (a str) and ``exc.code`` is the ``error`` field.
* A missing or wrong ``apikey`` is refused by the API gateway, not by Storage: HTTP 401
  with a body that is *not* the Storage envelope (``{"message": "Invalid API key", ...}``);
  ``storage3`` reports it as ``StorageApiError(code="InternalError", status=401)``.
  A right ``apikey`` with a wrong ``Authorization: Bearer`` is refused by Storage:
  HTTP 400, body ``statusCode "403"``, ``error "Unauthorized"``.
* Uploads: ``POST /object/{bucket}/{path}`` creates and only overwrites when the
  ``x-upsert`` header is exactly ``"true"``; otherwise an existing key is
  ``409 Duplicate``.  ``PUT`` always overwrites (and creates when missing).  Both a
  multipart body (what storage3 sends: a ``cacheControl`` field plus one file part whose
  Content-Type becomes the object's mimetype) and a raw body (Content-Type header) work.
* ``POST /object/list/{bucket}`` treats ``prefix`` as a *folder* (a missing trailing
  ``/`` is added), matches ``prefix + search`` case-insensitively, returns names
  relative to that folder, sub-folders as entries with ``id: null``, and caps ``limit``
  at 1500.  A bucket that does not exist lists as ``[]``.
* ``POST /object/list-v2/{bucket}`` takes a plain key prefix (not a folder), returns
  full keys, is recursive unless ``with_delimiter`` is true, and pages with ``cursor``
  (at most 1000 keys a page).

Test hooks: :meth:`StorageStandin.objects`, :meth:`StorageStandin.object_meta`,
:attr:`StorageStandin.buckets`, :attr:`StorageStandin.requests` (a ``(method, path)``
log) and fault injection with :meth:`StorageStandin.inject`.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import email.message
import email.utils
import hashlib
import json
import re
import socket
import sys
import threading
import traceback
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["StorageStandin"]

API_PREFIX = "/storage/v1"

# supabase/storage `isValidKey` / `isValidBucketName` (JS `\w` is ASCII-only).
_VALID_KEY = re.compile(r"^(\w|/|!|-|\.|\*|'|\(|\)| |&|\$|@|=|;|:|\+|,|\?)*$", re.ASCII)
_VALID_BUCKET = re.compile(r"^(\w|!|-|\.|\*|'|\(|\)| |&|\$|@|=|;|:|\+|,|\?)*$", re.ASCII)
_SIZE_LIMIT = re.compile(r"^\s*(\d+)\s*(GB|MB|KB|B)\s*$", re.IGNORECASE)
_SIZE_UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}
_SIZE_HINT = "Invalid file size format, hint: use 20GB / 20MB / 30KB / 3B"
_JSON = {"Content-Type": "application/json; charset=utf-8"}

# (HTTP status, JSON payload or raw bytes, extra response headers)
RouteResult = tuple[int, Any, dict[str, str]]

_LIST_MAX = 1500  # storage.search: LEAST(limits, 1500)
_LIST_V2_MAX = 1000  # listObjectsV2: Math.min(maxKeys || 1000, 1000)

# Bodies that the real service sends for these statuses (code, error, message).
_FAULT_ENVELOPES: dict[int, tuple[str, str, str]] = {
    429: ("SlowDown", "too_many_connections", "Too many connections issued to the database"),
    500: ("InternalError", "InternalError", "Internal server error"),
    503: (
        "DatabaseConnectionLimit",
        "DatabaseConnectionLimit",
        "The database has reached its maximum number of connections. Please try again later.",
    ),
    544: ("DatabaseTimeout", "DatabaseTimeout", "The connection to the database timed out"),
}

# First path segments under /object that are routes, never bucket names.
_OBJECT_RESERVED = {
    "list",
    "list-v2",
    "info",
    "authenticated",
    "public",
    "move",
    "copy",
    "sign",
    "upload",
}


def _now() -> datetime:
    """Current UTC time at millisecond precision (what comes back from Postgres via JS)."""
    ts = datetime.now(UTC)
    return ts.replace(microsecond=ts.microsecond // 1000 * 1000)


def _iso(ts: datetime | None) -> str | None:
    if ts is None:
        return None
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


class _ApiError(Exception):
    """A response to send instead of the normal one."""

    def __init__(self, http_status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(http_status, body)
        self.http_status = http_status
        self.body = body
        self.headers = headers or {}


def _storage_error(status: int, code: str, message: str, error: str | None = None) -> _ApiError:
    """A StorageBackendError as rendered by the Storage error handler."""
    body = {"statusCode": str(status), "code": code, "error": error or code, "message": message}
    return _ApiError(500 if status == 500 else 400, body)


def _no_such_bucket() -> _ApiError:
    return _storage_error(404, "NoSuchBucket", "Bucket not found", "Bucket not found")


def _no_such_key() -> _ApiError:
    return _storage_error(404, "NoSuchKey", "Object not found", "not_found")


def _key_exists() -> _ApiError:
    return _storage_error(409, "KeyAlreadyExists", "The resource already exists", "Duplicate")


def _bad_request(message: str) -> _ApiError:
    """A request-validation error (Fastify schema validation)."""
    return _ApiError(400, {"statusCode": "400", "error": "Bad Request", "message": message})


def _route_not_found(method: str, path: str) -> _ApiError:
    return _ApiError(
        404,
        {"message": f"Route {method}:{path} not found", "error": "Not Found", "statusCode": 404},
    )


@dataclass
class _Object:
    data: bytes
    content_type: str
    cache_control: str
    user_metadata: dict[str, Any] | None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    version: str = field(default_factory=lambda: str(uuid.uuid4()))
    created_at: datetime = field(default_factory=_now)
    updated_at: datetime = field(default_factory=_now)
    last_accessed_at: datetime = field(default_factory=_now)
    upload_count: int = 1
    download_count: int = 0

    @property
    def etag(self) -> str:
        return '"' + hashlib.md5(self.data).hexdigest() + '"'

    def metadata(self) -> dict[str, Any]:
        """The `storage.objects.metadata` column as Storage fills it."""
        return {
            "eTag": self.etag,
            "size": len(self.data),
            "mimetype": self.content_type,
            "cacheControl": self.cache_control,
            "lastModified": _iso(self.updated_at),
            "contentLength": len(self.data),
            "httpStatusCode": 200,
        }

    def list_row(self, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "id": self.id,
            "updated_at": _iso(self.updated_at),
            "created_at": _iso(self.created_at),
            "last_accessed_at": _iso(self.last_accessed_at),
            "metadata": self.metadata(),
        }

    def db_row(self, bucket: str, name: str) -> dict[str, Any]:
        return {
            "bucket_id": bucket,
            "name": name,
            "id": self.id,
            "owner": None,
            "owner_id": None,
            "version": self.version,
            "updated_at": _iso(self.updated_at),
            "created_at": _iso(self.created_at),
            "last_accessed_at": _iso(self.last_accessed_at),
            "metadata": self.metadata(),
            "user_metadata": self.user_metadata,
        }


@dataclass
class _Bucket:
    id: str
    name: str
    public: bool
    file_size_limit: int | None
    allowed_mime_types: list[str] | None
    created_at: datetime = field(default_factory=_now)
    updated_at: datetime = field(default_factory=_now)
    objects: dict[str, _Object] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            # The service key has no `sub`, so owner is NULL; the response schema
            # types it as a string and Fastify serialises NULL to "".
            "owner": "",
            "public": self.public,
            "type": "STANDARD",
            "file_size_limit": self.file_size_limit,
            "allowed_mime_types": self.allowed_mime_types,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
        }


@dataclass
class _Fault:
    status: int | None
    delay: float
    drop: bool
    remaining: int
    match: str
    message: str | None
    body: bytes | None


@dataclass
class _Request:
    method: str
    path: str  # percent-decoded, without /storage/v1 stripped, without query
    query: dict[str, list[str]]
    headers: email.message.Message
    body: bytes

    def header(self, name: str) -> str | None:
        value = self.headers.get(name)
        return None if value is None else str(value)

    def json(self) -> dict[str, Any]:
        if not self.body:
            return {}
        try:
            data = json.loads(self.body)
        except ValueError as exc:
            raise _bad_request(f"Body is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise _bad_request("body must be object")
        return data


def _parse_size_limit(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise _storage_error(400, "InvalidRequest", _SIZE_HINT)
    if isinstance(value, int):
        if value < 0:
            raise _bad_request("body/file_size_limit must be >= 0")
        return value
    if isinstance(value, str):
        m = _SIZE_LIMIT.match(value)
        if m:
            return int(m.group(1)) * _SIZE_UNITS[m.group(2).upper()]
    raise _storage_error(400, "InvalidRequest", _SIZE_HINT)


def _header_param(value: str, param: str) -> str | None:
    msg = email.message.Message()
    msg["content-type"] = value
    got = msg.get_param(param, header="content-type")
    if got is None or isinstance(got, tuple):
        return None
    return str(got)


def _bare_mime(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


def _parse_multipart(body: bytes, boundary: str) -> list[tuple[dict[str, str], bytes]]:
    """Split a multipart/form-data body into (lower-cased headers, payload) parts."""
    delimiter = b"--" + boundary.encode("latin-1")
    parts: list[tuple[dict[str, str], bytes]] = []
    chunks = body.split(delimiter)
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break
        if chunk.startswith(b"\r\n"):
            chunk = chunk[2:]
        head, sep, payload = chunk.partition(b"\r\n\r\n")
        if not sep:
            continue
        if payload.endswith(b"\r\n"):
            payload = payload[:-2]
        headers: dict[str, str] = {}
        for line in head.split(b"\r\n"):
            name, colon, value = line.decode("latin-1").partition(":")
            if colon:
                headers[name.strip().lower()] = value.strip()
        parts.append((headers, payload))
    return parts


def _disposition_name(disposition: str) -> str | None:
    msg = email.message.Message()
    msg["content-disposition"] = disposition
    got = msg.get_param("name", header="content-disposition")
    if got is None or isinstance(got, tuple):
        return None
    return str(got)


def _mime_allowed(mime: str, allowed: list[str] | None) -> bool:
    if not allowed:
        return True
    bare = _bare_mime(mime)
    for pattern in allowed:
        pattern = _bare_mime(pattern)
        if pattern == bare:
            return True
        if pattern.endswith("/*") and bare.startswith(pattern[:-1]):
            return True
    return False


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, standin: StorageStandin) -> None:
        self.standin = standin
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (timeout, dropped connection, stop()) is not an error here.
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)) or self.standin._stopping.is_set():
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Without this, Nagle + delayed ACK add ~40 ms to every keep-alive exchange.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.sockets_lock:
            self.server.open_sockets.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.server.sockets_lock:
                self.server.open_sockets.discard(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _dispatch(self) -> None:
        self.server.standin._handle(self)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _dispatch

    # -- I/O helpers used by StorageStandin --------------------------------

    def read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            out = bytearray()
            while True:
                size_line = self.rfile.readline()
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def drop(self) -> None:
        """Close the connection without sending anything."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class StorageStandin:
    """In-process fake of the Supabase Storage API on ``127.0.0.1:<random port>``."""

    def __init__(self, service_key: str = "test-service-key") -> None:
        self.service_key = service_key
        self._lock = threading.RLock()
        self._buckets: dict[str, _Bucket] = {}
        self._requests: list[tuple[str, str]] = []
        self._faults: list[_Fault] = []
        self._internal_errors: list[str] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("StorageStandin already started")
        self._stopping.clear()
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="storage-standin",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()  # wakes handlers sleeping on an injected delay
        server.shutdown()
        with server.sockets_lock:
            sockets = list(server.open_sockets)
        for sock in sockets:  # keep-alive connections idling in their handler threads
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> StorageStandin:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Project URL to hand to ``supabase.create_client`` (no ``/storage/v1``)."""
        if self._server is None:
            raise RuntimeError("StorageStandin is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def storage_url(self) -> str:
        """The Storage base URL, as ``storage3.create_client`` wants it."""
        return self.url + API_PREFIX + "/"

    # -- inspection --------------------------------------------------------

    @property
    def buckets(self) -> dict[str, dict[str, Any]]:
        """Snapshot: bucket id -> {id, name, public, file_size_limit, allowed_mime_types, ...}."""
        with self._lock:
            return {bid: b.row() for bid, b in self._buckets.items()}

    def objects(self, bucket: str) -> dict[str, bytes]:
        """Snapshot of a bucket's contents: key -> bytes.  KeyError for an unknown bucket."""
        with self._lock:
            return {name: obj.data for name, obj in self._buckets[bucket].objects.items()}

    def object_meta(self, bucket: str, path: str) -> dict[str, Any]:
        """Stored facts about one object.  KeyError when the bucket or object is missing."""
        with self._lock:
            obj = self._buckets[bucket].objects[path]
            return {
                "id": obj.id,
                "version": obj.version,
                "content_type": obj.content_type,
                "cache_control": obj.cache_control,
                "size": len(obj.data),
                "etag": obj.etag,
                "user_metadata": copy.deepcopy(obj.user_metadata),
                "upload_count": obj.upload_count,
                "download_count": obj.download_count,
                "created_at": obj.created_at,
                "updated_at": obj.updated_at,
            }

    @property
    def requests(self) -> list[tuple[str, str]]:
        """Snapshot of every request received, as (METHOD, percent-decoded path without query)."""
        with self._lock:
            return list(self._requests)

    @property
    def internal_errors(self) -> list[str]:
        """Tracebacks of stand-in bugs (answered as HTTP 500); should stay empty."""
        with self._lock:
            return list(self._internal_errors)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def count_requests(self, method: str | None = None, contains: str = "") -> int:
        """How many logged requests have this method (any if None) and a path containing `contains`."""
        with self._lock:
            return sum(1 for m, p in self._requests if (method is None or m == method.upper()) and contains in p)

    # -- direct seeding (bypasses HTTP; not logged) ------------------------

    def create_bucket(
        self,
        bucket_id: str,
        *,
        public: bool = False,
        file_size_limit: int | str | None = None,
        allowed_mime_types: list[str] | None = None,
    ) -> None:
        with self._lock:
            if bucket_id in self._buckets:
                raise ValueError(f"bucket {bucket_id!r} exists")
            self._buckets[bucket_id] = _Bucket(
                id=bucket_id,
                name=bucket_id,
                public=public,
                file_size_limit=_parse_size_limit(file_size_limit),
                allowed_mime_types=allowed_mime_types,
            )

    def put_object(
        self,
        bucket: str,
        path: str,
        data: bytes,
        *,
        content_type: str = "application/octet-stream",
        cache_control: str = "max-age=3600",
    ) -> None:
        with self._lock:
            self._buckets[bucket].objects[path] = _Object(
                data=bytes(data), content_type=content_type, cache_control=cache_control, user_metadata=None
            )

    # -- fault injection -----------------------------------------------------

    def inject(
        self,
        *,
        status: int | None = None,
        delay: float = 0.0,
        drop: bool = False,
        times: int = 1,
        match: str = "",
        message: str | None = None,
        body: bytes | None = None,
    ) -> None:
        """Make the next `times` requests whose "METHOD /path" contains `match` misbehave.

        In order: wait `delay` seconds; then, if `drop`, close the connection without a
        response; else if `status`, answer that status with the Storage error envelope
        (or the raw `body`, e.g. a gateway's HTML page; `message` overrides the
        envelope's message); else handle the request normally (a pure delay).
        Faults queue up: each request consumes the first pending fault it matches.
        """
        if times < 1:
            raise ValueError("times must be >= 1")
        if status is None and not drop and delay <= 0:
            raise ValueError("inject needs status, drop or a positive delay")
        with self._lock:
            self._faults.append(
                _Fault(
                    status=status,
                    delay=delay,
                    drop=drop,
                    remaining=times,
                    match=match,
                    message=message,
                    body=body,
                )
            )

    def reset_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def pending_faults(self) -> int:
        with self._lock:
            return sum(f.remaining for f in self._faults)

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        target = f"{method} {path}"
        with self._lock:
            for fault in self._faults:
                if fault.match in target:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    # -- request handling ----------------------------------------------------

    def _handle(self, h: _Handler) -> None:
        split = urlsplit(h.path)
        path = unquote(split.path)
        body = h.read_body()
        method = h.command.upper()
        with self._lock:
            self._requests.append((method, path))

        fault = self._take_fault(method, path)
        if fault is not None:
            if fault.delay > 0:
                self._stopping.wait(fault.delay)
            if fault.drop:
                h.drop()
                return
            if fault.status is not None:
                self._send_fault(h, fault)
                return

        req = _Request(method=method, path=path, query=parse_qs(split.query), headers=h.headers, body=body)
        try:
            status, payload, headers = self._route(req)
        except _ApiError as err:
            status, payload, headers = err.http_status, err.body, err.headers
        except Exception as exc:  # a bug in the stand-in: answer like Storage would, and record it
            with self._lock:
                self._internal_errors.append(traceback.format_exc())
            status, payload, headers = (
                500,
                {
                    "statusCode": "500",
                    "code": "InternalError",
                    "error": "Internal",
                    "message": f"stand-in error: {exc!r}",
                },
                {},
            )
        if isinstance(payload, bytes):
            h.send(status, payload, headers)
        else:
            data = json.dumps(payload).encode()
            h.send(status, data, {**_JSON, **headers})

    def _send_fault(self, h: _Handler, fault: _Fault) -> None:
        assert fault.status is not None
        if fault.body is not None:
            h.send(fault.status, fault.body, {"Content-Type": "text/html"})
            return
        try:
            phrase = HTTPStatus(fault.status).phrase
        except ValueError:
            phrase = "Error"
        code, error, message = _FAULT_ENVELOPES.get(
            fault.status,
            ("InternalError" if fault.status >= 500 else "InvalidRequest", phrase, phrase),
        )
        payload = {
            "statusCode": str(fault.status),
            "code": code,
            "error": error,
            "message": fault.message or message,
        }
        h.send(fault.status, json.dumps(payload).encode(), dict(_JSON))

    def _check_auth(self, req: _Request) -> None:
        apikey = req.header("apikey")
        if apikey is None:
            raise _ApiError(
                401,
                {
                    "message": "No API key found in request",
                    "hint": "No `apikey` request header or url param was found.",
                },
            )
        if apikey != self.service_key:
            raise _ApiError(
                401,
                {
                    "message": "Invalid API key",
                    "hint": "Double check your Supabase `anon` or `service_role` API key.",
                },
            )
        auth = req.header("authorization") or ""
        token = re.sub(r"^Bearer\s+", "", auth, flags=re.IGNORECASE)
        if token != self.service_key:
            if not token:
                reason = "jwt must be provided"
            elif token.count(".") != 2:
                reason = "jwt malformed"
            else:
                reason = "invalid signature"
            raise _storage_error(403, "AccessDenied", reason, "Unauthorized")

    def _route(self, req: _Request) -> RouteResult:
        if not (req.path == API_PREFIX or req.path.startswith(API_PREFIX + "/")):
            raise _ApiError(404, {"message": "no Route matched with those values"})
        rel = req.path[len(API_PREFIX) :]
        parts = [p for p in rel.split("/") if p != ""]
        m = req.method
        if not parts:
            raise _route_not_found(m, rel)

        if parts[0] == "bucket":
            self._check_auth(req)
            return self._route_bucket(req, m, parts[1:], rel)
        if parts[0] == "object":
            return self._route_object(req, m, parts[1:], rel)
        raise _route_not_found(m, rel)

    # -- buckets -------------------------------------------------------------

    def _route_bucket(self, req: _Request, m: str, parts: list[str], rel: str) -> RouteResult:
        if not parts:
            if m == "GET":
                with self._lock:
                    rows = [b.row() for b in self._buckets.values()]
                return 200, rows, {}
            if m == "POST":
                return 200, self._create_bucket(req.json()), {}
        elif len(parts) == 1:
            bid = parts[0]
            if m == "GET":
                with self._lock:
                    bucket = self._buckets.get(bid)
                    if bucket is None:
                        raise _no_such_bucket()
                    row = bucket.row()
                row.pop("type")
                return 200, row, {}
            if m == "PUT":
                return 200, self._update_bucket(bid, req.json()), {}
            if m == "DELETE":
                with self._lock:
                    bucket = self._buckets.get(bid)
                    if bucket is None:
                        raise _no_such_bucket()
                    if bucket.objects:
                        raise _storage_error(409, "ResourceNotEmpty", "The bucket you tried to delete is not empty")
                    del self._buckets[bid]
                return 200, {"message": "Successfully deleted"}, {}
        elif len(parts) == 2 and parts[1] == "empty" and m == "POST":
            with self._lock:
                bucket = self._buckets.get(parts[0])
                if bucket is None:
                    raise _no_such_bucket()
                bucket.objects.clear()
            return 200, {"message": "Successfully emptied"}, {}
        raise _route_not_found(m, rel)

    def _create_bucket(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body.get("name")
        if not isinstance(name, str):
            raise _bad_request("body must have required property 'name'")
        bid = body.get("id") or name
        if not isinstance(bid, str):
            raise _bad_request("body/id must be string")
        public = body.get("public", False)
        if not isinstance(public, bool):
            raise _bad_request("body/public must be boolean")
        if not bid or len(bid) > 100 or not _VALID_BUCKET.match(bid):
            raise _storage_error(400, "InvalidBucketName", "Bucket name invalid", "Invalid Input")
        mimes = body.get("allowed_mime_types")
        if mimes is not None and not (isinstance(mimes, list) and all(isinstance(x, str) for x in mimes)):
            raise _bad_request("body/allowed_mime_types must be array")
        bucket = _Bucket(
            id=bid,
            name=name,
            public=public,
            file_size_limit=_parse_size_limit(body.get("file_size_limit")),
            allowed_mime_types=[x for x in mimes if x] if mimes is not None else None,
        )
        with self._lock:
            if bid in self._buckets:
                raise _storage_error(409, "BucketAlreadyExists", "The resource already exists", "Duplicate")
            self._buckets[bid] = bucket
        return {"name": name}

    def _update_bucket(self, bid: str, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            bucket = self._buckets.get(bid)
            if bucket is None:
                raise _no_such_bucket()
            if "public" in body:
                if not isinstance(body["public"], bool):
                    raise _bad_request("body/public must be boolean")
                bucket.public = body["public"]
            if "file_size_limit" in body:
                bucket.file_size_limit = _parse_size_limit(body["file_size_limit"])
            if "allowed_mime_types" in body:
                mimes = body["allowed_mime_types"]
                bucket.allowed_mime_types = [x for x in mimes if x] if isinstance(mimes, list) else None
            bucket.updated_at = _now()
        return {"message": "Successfully updated"}

    # -- objects -------------------------------------------------------------

    def _route_object(self, req: _Request, m: str, parts: list[str], rel: str) -> RouteResult:
        if not parts:
            raise _route_not_found(m, rel)
        head = parts[0]

        # Public routes: no credentials needed, bucket must be public.
        if head == "public" and m in ("GET", "HEAD") and len(parts) >= 3:
            return self._download(parts[1], "/".join(parts[2:]), public=True)
        if head == "info" and len(parts) >= 4 and parts[1] == "public" and m == "GET":
            return 200, self._info(parts[2], "/".join(parts[3:]), public=True), {}

        self._check_auth(req)

        if head == "list" and len(parts) == 2 and m == "POST":
            return 200, self._list(parts[1], req.json()), {}
        if head == "list-v2" and len(parts) == 2 and m == "POST":
            return 200, self._list_v2(parts[1], req.json()), {}
        if head == "info" and m == "GET":
            rest = parts[2:] if len(parts) > 1 and parts[1] == "authenticated" else parts[1:]
            if len(rest) >= 2:
                return 200, self._info(rest[0], "/".join(rest[1:]), public=False), {}
        if head == "authenticated" and m in ("GET", "HEAD") and len(parts) >= 3:
            return self._download(parts[1], "/".join(parts[2:]), public=False)
        if head == "move" and len(parts) == 1 and m == "POST":
            return 200, self._move_or_copy(req.json(), move=True), {}
        if head == "copy" and len(parts) == 1 and m == "POST":
            return 200, self._move_or_copy(req.json(), move=False), {}
        if head in _OBJECT_RESERVED:
            raise _route_not_found(m, rel)

        bucket = head
        if len(parts) == 1:
            if m == "DELETE":
                return 200, self._remove(bucket, req.json()), {}
            raise _route_not_found(m, rel)
        key = "/".join(parts[1:])
        if m in ("GET", "HEAD"):
            return self._download(bucket, key, public=False)
        if m == "POST":
            upsert = req.header("x-upsert") == "true"
            return 200, self._upload(bucket, key, req, upsert=upsert), {}
        if m == "PUT":
            return 200, self._upload(bucket, key, req, upsert=True), {}
        if m == "DELETE":
            with self._lock:
                b = self._get_bucket(bucket)
                if b.objects.pop(key, None) is None:
                    raise _no_such_key()
            return 200, {"message": "Successfully deleted"}, {}
        raise _route_not_found(m, rel)

    def _get_bucket(self, bucket: str) -> _Bucket:
        b = self._buckets.get(bucket)
        if b is None:
            raise _no_such_bucket()
        return b

    def _upload(self, bucket: str, key: str, req: _Request, *, upsert: bool) -> dict[str, Any]:
        if not key or not _VALID_KEY.match(key):
            raise _storage_error(400, "InvalidKey", f"Invalid key: {key}")
        content_type = req.header("content-type") or ""
        user_metadata: dict[str, Any] | None = None
        if content_type.lower().startswith("multipart/form-data"):
            boundary = _header_param(content_type, "boundary")
            if not boundary:
                raise _storage_error(400, "InvalidRequest", "Unexpected empty file received", "empty_file")
            file_part: tuple[dict[str, str], bytes] | None = None
            cache_time: str | None = None
            for headers, payload in _parse_multipart(req.body, boundary):
                name = _disposition_name(headers.get("content-disposition", ""))
                if "filename=" in headers.get("content-disposition", "") or name == "file":
                    if file_part is None:
                        file_part = (headers, payload)
                elif name == "cacheControl":
                    cache_time = payload.decode("utf-8", "replace")
                elif name == "metadata":
                    try:
                        parsed = json.loads(payload)
                    except ValueError as exc:
                        raise _storage_error(400, "InvalidRequest", "Invalid metadata") from exc
                    user_metadata = parsed if isinstance(parsed, dict) else None
            if file_part is None:
                raise _storage_error(400, "InvalidRequest", "No file provided", "no_file_provided")
            data = file_part[1]
            part_type = file_part[0].get("content-type") or "application/octet-stream"
            mimetype = _bare_mime(part_type)  # busboy reports type/subtype only
            cache_control = f"max-age={cache_time}" if cache_time else "no-cache"
        else:
            data = req.body
            mimetype = content_type or "application/octet-stream"
            cache_control = req.header("cache-control") or "no-cache"
            raw_meta = req.header("x-metadata")
            if raw_meta:
                try:
                    parsed = json.loads(base64.b64decode(raw_meta))
                except ValueError as exc:
                    raise _storage_error(400, "InvalidRequest", "Invalid metadata") from exc
                user_metadata = parsed if isinstance(parsed, dict) else None

        with self._lock:
            b = self._get_bucket(bucket)
            if b.file_size_limit is not None and len(data) > b.file_size_limit:
                raise _storage_error(
                    413, "EntityTooLarge", "The object exceeded the maximum allowed size", "Payload too large"
                )
            if not _mime_allowed(mimetype, b.allowed_mime_types):
                raise _storage_error(
                    415, "InvalidMimeType", f"mime type {mimetype} is not supported", "invalid_mime_type"
                )
            existing = b.objects.get(key)
            if existing is not None and not upsert:
                raise _key_exists()
            if existing is None:
                obj = _Object(
                    data=data, content_type=mimetype, cache_control=cache_control, user_metadata=user_metadata
                )
                b.objects[key] = obj
            else:
                obj = existing
                obj.data = data
                obj.content_type = mimetype
                obj.cache_control = cache_control
                obj.user_metadata = user_metadata
                obj.version = str(uuid.uuid4())
                obj.updated_at = obj.last_accessed_at = _now()
                obj.upload_count += 1
            return {"Id": obj.id, "Key": f"{bucket}/{key}"}

    def _find(self, bucket: str, key: str, *, public: bool) -> tuple[_Bucket, _Object]:
        b = self._buckets.get(bucket)
        if b is None or (public and not b.public):
            raise _no_such_bucket()
        obj = b.objects.get(key)
        if obj is None:
            raise _no_such_key()
        return b, obj

    def _download(self, bucket: str, key: str, *, public: bool) -> RouteResult:
        with self._lock:
            _, obj = self._find(bucket, key, public=public)
            obj.download_count += 1
            obj.last_accessed_at = _now()
            headers = {
                "Content-Type": obj.content_type,
                "Cache-Control": obj.cache_control,
                "ETag": obj.etag,
                "Last-Modified": email.utils.format_datetime(obj.updated_at, usegmt=True),
                "Accept-Ranges": "bytes",
            }
            return 200, bytes(obj.data), headers

    def _info(self, bucket: str, key: str, *, public: bool) -> dict[str, Any]:
        with self._lock:
            _, obj = self._find(bucket, key, public=public)
            return {
                "id": obj.id,
                "name": key,
                "version": obj.version,
                "bucket_id": bucket,
                "size": len(obj.data),
                "content_type": obj.content_type,
                "cache_control": obj.cache_control,
                "etag": obj.etag,
                "metadata": copy.deepcopy(obj.user_metadata),
                "last_modified": _iso(obj.updated_at),
                "created_at": _iso(obj.created_at),
            }

    def _remove(self, bucket: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        prefixes = body.get("prefixes")
        if not isinstance(prefixes, list) or not all(isinstance(p, str) for p in prefixes):
            raise _bad_request("body must have required property 'prefixes'")
        if not prefixes:
            raise _bad_request("body/prefixes must NOT have fewer than 1 items")
        deleted: list[dict[str, Any]] = []
        with self._lock:
            b = self._buckets.get(bucket)
            if b is None:
                return deleted  # a plain DELETE ... WHERE bucket_id = $1: nothing matches
            for name in dict.fromkeys(prefixes):
                obj = b.objects.pop(name, None)
                if obj is not None:
                    deleted.append(obj.db_row(bucket, name))
        return deleted

    def _move_or_copy(self, body: dict[str, Any], *, move: bool) -> dict[str, Any]:
        src_bucket = body.get("bucketId")
        src = body.get("sourceKey")
        dst = body.get("destinationKey")
        dst_bucket = body.get("destinationBucket") or src_bucket
        if not all(isinstance(x, str) for x in (src_bucket, src, dst, dst_bucket)):
            raise _bad_request("body must have required properties 'bucketId', 'sourceKey', 'destinationKey'")
        assert isinstance(src_bucket, str) and isinstance(src, str)
        assert isinstance(dst, str) and isinstance(dst_bucket, str)
        if not _VALID_KEY.match(dst):
            raise _storage_error(400, "InvalidKey", f"Invalid key: {dst}")
        with self._lock:
            sb = self._get_bucket(src_bucket)
            db = self._get_bucket(dst_bucket)
            obj = sb.objects.get(src)
            if obj is None:
                raise _no_such_key()
            if dst in db.objects and not (move and sb is db and src == dst):
                raise _key_exists()
            if move:
                del sb.objects[src]
                obj.updated_at = _now()
                db.objects[dst] = obj
                return {"message": "Successfully moved"}
            clone = _Object(
                data=obj.data,
                content_type=obj.content_type,
                cache_control=obj.cache_control,
                user_metadata=copy.deepcopy(obj.user_metadata),
            )
            db.objects[dst] = clone
            return {"Id": clone.id, "Key": f"{dst_bucket}/{dst}"}

    # -- listing ---------------------------------------------------------------

    def _list(self, bucket: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        """`POST /object/list/{bucket}`: `storage.search()` semantics."""
        prefix = body.get("prefix")
        if not isinstance(prefix, str):
            raise _bad_request("body must have required property 'prefix'")
        limit = body.get("limit", 100)
        offset = body.get("offset", 0)
        search = body.get("search") or ""
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise _bad_request("body/limit must be >= 1")
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise _bad_request("body/offset must be >= 0")
        if not isinstance(search, str):
            raise _bad_request("body/search must be string")
        sort_by = body.get("sortBy") or {}
        column = (sort_by.get("column") or "name") if isinstance(sort_by, dict) else "name"
        order = (sort_by.get("order") or "asc") if isinstance(sort_by, dict) else "asc"
        if column not in ("name", "updated_at", "created_at", "last_accessed_at"):
            raise _bad_request("body/sortBy/column must be equal to one of the allowed values")
        if order not in ("asc", "desc"):
            raise _bad_request("body/sortBy/order must be equal to one of the allowed values")

        if prefix and not prefix.endswith("/"):
            prefix += "/"  # "assuming prefix is always a folder"
        levels = len(prefix.split("/"))
        v_prefix = prefix + search
        lower_prefix = v_prefix.lower()
        limit = min(limit, _LIST_MAX)

        folders: dict[str, str] = {}  # lower(common prefix) -> display name
        files: list[tuple[str, str, _Object]] = []  # (lower full name, full name, obj)
        with self._lock:
            b = self._buckets.get(bucket)
            items = list(b.objects.items()) if b is not None else []
            for name, obj in items:
                if not name.lower().startswith(lower_prefix):
                    continue
                slash = name.find("/", len(v_prefix))
                if slash >= 0:
                    common = name[: slash + 1]
                    folders.setdefault(common.lower(), common.rstrip("/").split("/")[levels - 1])
                else:
                    files.append((name.lower(), name, obj))
            desc = order == "desc"
            if column == "name":
                entries: list[tuple[str, dict[str, Any]]] = [(k, _folder_row(v)) for k, v in folders.items()]
                entries += [(low, obj.list_row(name.split("/")[levels - 1])) for low, name, obj in files]
                entries.sort(key=lambda e: e[0], reverse=desc)
                rows = [row for _, row in entries]
            else:
                rows = [_folder_row(v) for _, v in sorted(folders.items(), reverse=desc)]
                files.sort(key=lambda f: (getattr(f[2], column), f[1]), reverse=desc)
                rows += [obj.list_row(name.split("/")[levels - 1]) for _, name, obj in files]
        return rows[offset : offset + limit]

    def _list_v2(self, bucket: str, body: dict[str, Any]) -> dict[str, Any]:
        """`POST /object/list-v2/{bucket}`: plain key prefix, full keys, cursor paging."""
        prefix = body.get("prefix") or ""
        if not isinstance(prefix, str):
            raise _bad_request("body/prefix must be string")
        limit = body.get("limit") or _LIST_V2_MAX
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise _bad_request("body/limit must be >= 1")
        limit = min(limit, _LIST_V2_MAX)
        with_delimiter = bool(body.get("with_delimiter"))
        sort_by = body.get("sortBy") or {}
        if not isinstance(sort_by, dict):
            raise _bad_request("body/sortBy must be object")
        column = sort_by.get("column") or "name"
        order = sort_by.get("order") or "asc"
        if column not in ("name", "updated_at", "created_at") or order not in ("asc", "desc"):
            raise _bad_request("body/sortBy must be equal to one of the allowed values")
        cursor = body.get("cursor")
        start_after = ""
        after_ts: str | None = None
        if cursor:
            decoded = _decode_cursor(str(cursor))
            start_after = decoded.get("startAfter", "")
            order = decoded.get("sortOrder") or order
            column = decoded.get("sortColumn") or column
            after_ts = decoded.get("sortColumnAfter")
        desc = order == "desc"
        levels = 1 if not prefix else len(prefix.split("/"))

        with self._lock:
            b = self._buckets.get(bucket)
            items = sorted(b.objects.items()) if b is not None else []
            rows: list[dict[str, Any]] = []
            seen_folders: set[str] = set()
            sortable: list[tuple[Any, dict[str, Any]]] = []
            for name, obj in items:
                if not name.startswith(prefix):
                    continue
                slash = name.find("/", len(prefix)) if with_delimiter else -1
                if slash >= 0:
                    folder = name[: slash + 1]
                    if folder in seen_folders:
                        continue
                    seen_folders.add(folder)
                    row = {"id": None, "key": folder.rstrip("/").split("/")[levels - 1], "name": folder}
                    sortable.append(((None, folder), row))
                    continue
                row = obj.list_row(name)
                if with_delimiter:
                    row["key"] = name.split("/")[levels - 1]
                ts = getattr(obj, column) if column != "name" else None
                sortable.append(((ts, name), row))
            if column == "name":
                sortable.sort(key=lambda e: e[0][1], reverse=desc)
            else:
                epoch = datetime.fromtimestamp(0, UTC)
                sortable.sort(key=lambda e: (e[0][0] or epoch, e[0][1]), reverse=desc)
            if start_after:
                sortable = [e for e in sortable if _after(e[0], start_after, after_ts, column, desc)]
            rows = [row for _, row in sortable[: limit + 1]]

        has_next = len(rows) > limit
        rows = rows[:limit]
        result: dict[str, Any] = {
            "hasNext": has_next,
            "folders": [r for r in rows if r["id"] is None],
            "objects": [r for r in rows if r["id"] is not None],
        }
        if has_next:
            last = rows[-1]
            token: dict[str, str] = {"startAfter": last["name"], "sortOrder": order}
            if column != "name":
                token["sortColumn"] = column
                if last.get(column):
                    token["sortColumnAfter"] = last[column]
            result["nextCursor"] = _encode_cursor(token)
            result["nextCursorKey"] = last["name"]
        return result


def _folder_row(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "id": None,
        "updated_at": None,
        "created_at": None,
        "last_accessed_at": None,
        "metadata": None,
    }


_CURSOR_PARTS = {"l": "startAfter", "o": "sortOrder", "c": "sortColumn", "a": "sortColumnAfter"}


def _encode_cursor(token: dict[str, str]) -> str:
    lines = [f"{short}:{token[long]}" for short, long in _CURSOR_PARTS.items() if token.get(long)]
    return base64.b64encode("\n".join(lines).encode()).decode()


def _decode_cursor(cursor: str) -> dict[str, str]:
    try:
        text = base64.b64decode(cursor).decode()
    except ValueError as exc:
        raise _storage_error(400, "InvalidParameter", "Invalid Parameter continuation token") from exc
    out: dict[str, str] = {"startAfter": "", "sortOrder": "asc"}
    for line in text.split("\n"):
        m = re.match(r"^(\S):(.*)", line)
        if not m or m.group(1) not in _CURSOR_PARTS:
            raise _storage_error(400, "InvalidParameter", "Invalid Parameter continuation token")
        out[_CURSOR_PARTS[m.group(1)]] = m.group(2)
    return out


def _after(
    sort_key: tuple[datetime | None, str], start_after: str, after_ts: str | None, column: str, desc: bool
) -> bool:
    ts, name = sort_key
    if column != "name" and after_ts:
        pivot = (datetime.fromisoformat(after_ts.replace("Z", "+00:00")), start_after)
        epoch = datetime.fromtimestamp(0, UTC)
        here = (ts or epoch, name)
        return here < pivot if desc else here > pivot
    return name < start_after if desc else name > start_after
