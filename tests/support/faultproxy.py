"""A small HTTP/1.1 proxy of our own in front of the real Storage server, that injects faults.

The real server answers like the real server; what it cannot do on demand is fail. This proxy sits
between the client and it and, on the requests a rule matches, answers 429/500/503 itself, drops the
connection, or waits first; it can also add latency to every request (what a distant region costs)
and limit the request rate with 429s (what Supabase's gateway does). It serves `/storage/v1/...` the
way the supabase client calls it and strips that prefix, so it can stand straight in front of the
server (one hop less than the kit's own prefix proxy). asyncio on a thread of its own: every client
connection gets its own upstream connection, kept alive as long as the client keeps its own.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

PREFIX = b"/storage/v1"


@dataclass
class Rule:
    """Requests whose 'METHOD path' contains `match` get this fault, `times` times."""

    match: str = ""
    times: int = 1
    status: int | None = None
    drop: bool = False
    delay: float = 0.0


@dataclass
class Seen:
    """What the proxy did with one request."""

    method: str
    path: str
    status: int | None  # None: dropped


@dataclass
class _Limiter:
    """A token bucket: `rate` requests per second, bursts of `burst`."""

    rate: float
    burst: float
    tokens: float = 0.0
    at: float = field(default_factory=time.monotonic)

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class FaultProxy:
    """Use as a context manager; `url` is what the client gets as SUPABASE_URL."""

    def __init__(self, upstream: str, latency: float = 0.0, rate_limit: float | None = None) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.latency = latency
        self.rules: list[Rule] = []
        self.seen: list[Seen] = []
        self._limiter = _Limiter(rate_limit, max(1.0, rate_limit / 10), max(1.0, rate_limit / 10)) \
            if rate_limit else None
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="faultproxy", daemon=True)
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def inject(self, match: str = "", times: int = 1, status: int | None = None, drop: bool = False,
               delay: float = 0.0) -> None:
        with self._lock:
            self.rules.append(Rule(match, times, status, drop, delay))

    def reset_faults(self) -> None:
        with self._lock:
            self.rules.clear()

    def clear_requests(self) -> None:
        with self._lock:
            self.seen.clear()

    def count(self, method: str, path_start: str, status: int | str | None = "any") -> int:
        """Requests seen with this method whose path (without /storage/v1) starts so."""
        with self._lock:
            return sum(1 for s in self.seen if s.method == method and s.path.startswith(path_start)
                       and (status == "any" or s.status == status))

    def _rule(self, line: str) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.times > 0 and rule.match in line:
                    rule.times -= 1
                    return rule
        return None

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", 0, backlog=512))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:  # open connections end with their tasks, while the loop still runs
            server.close()
            tasks = asyncio.all_tasks(self._loop)
            for task in tasks:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            self._loop.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                method, target, _ = head.split(b" ", 2)
                body = await _body(reader, _headers(head))
                path = target[len(PREFIX):] if target.startswith(PREFIX) else target
                line = f"{method.decode()} {path.decode()}"
                rule = self._rule(line)
                wait = self.latency + (rule.delay if rule else 0.0)
                if wait:
                    await asyncio.sleep(wait)
                status = rule.status if rule else None
                if status is None and self._limiter is not None and not self._limiter.take():
                    status = 429
                if rule and rule.drop:
                    self._note(method, path, None)
                    return
                if status is not None:
                    self._note(method, path, status)
                    writer.write(_answer(status))
                    await writer.drain()
                    continue
                request = method + b" " + path + head[len(method) + 1 + len(target):] + body
                for fresh in (up is None, True):  # a kept-alive upstream connection the server closed: anew
                    if fresh:
                        if up is not None:
                            up[1].close()
                        up = await asyncio.open_connection(*self.upstream)
                    assert up is not None
                    try:
                        up[1].write(request)
                        await up[1].drain()
                        rhead = await up[0].readuntil(b"\r\n\r\n")
                        break
                    except (ConnectionError, asyncio.IncompleteReadError):
                        if fresh:
                            raise
                assert up is not None
                code = int(rhead.split(b" ", 2)[1])
                rbody = b"" if method == b"HEAD" or code in (204, 304) else await _body(up[0], _headers(rhead))
                self._note(method, path, code)
                writer.write(rhead + rbody)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):  # cancelled: at stop
            return
        finally:
            writer.close()
            if up is not None:
                up[1].close()

    def _note(self, method: bytes, path: bytes, status: int | None) -> None:
        with self._lock:
            self.seen.append(Seen(method.decode(), path.decode(), status))


def _headers(head: bytes) -> dict[bytes, bytes]:
    out = {}
    for raw in head.split(b"\r\n")[1:]:
        name, sep, value = raw.partition(b":")
        if sep:
            out[name.strip().lower()] = value.strip()
    return out


async def _body(reader: asyncio.StreamReader, headers: dict[bytes, bytes]) -> bytes:
    """The message body, raw (chunked bodies keep their framing)."""
    if b"content-length" in headers:
        return await reader.readexactly(int(headers[b"content-length"]))
    if headers.get(b"transfer-encoding", b"").lower() != b"chunked":
        return b""
    parts = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        parts.append(size_line + await reader.readexactly(size + 2))
        if size == 0:
            return b"".join(parts)


def _answer(status: int) -> bytes:
    """What a gateway says when it refuses: a real HTTP status and a small JSON body."""
    reason = {429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}.get(status, "Error")
    body = f'{{"statusCode":"{status}","error":"{reason}","message":"injected by the test proxy"}}'.encode()
    return (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            f"connection: keep-alive\r\n\r\n").encode() + body
