"""A lean HTTP/1.1 keep-alive client: asyncio Protocols and the httptools (llhttp) parser.

Hand-written because aiohttp's client cost about 250 µs of CPU per request, which made the
generator, not the server, the bottleneck on a 2-core laptop: closed loop over 16 connections,
aiohttp managed about 4,100 requests/s per generator core (1.5x locust's 2,700), this client
about 11,700 (4.4x; bench/load.py). It does only what the load generator needs: send one fixed
request to one URL over a bounded pool of keep-alive connections, read Content-Length, chunked
and until-close bodies, keep two response headers, and give up on a request at its deadline
(checked by one timer per pool every tenth of the timeout, at most 0.1 s: a timer per request
was about a tenth of the client's busy time). A connection that times out, errors or is closed
by the server is dropped, never reused. The local backend's readiness and liveness probes use
it too (`get`), so the cluster has one HTTP client, not two.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from typing import NamedTuple
from urllib.parse import urlsplit

import httptools

ERROR_BODY_BYTES = 300  # how much of a response body to keep: enough for an error message


class Response(NamedTuple):
    status: int
    nbytes: int
    head: bytes  # the body's first ERROR_BODY_BYTES bytes
    replica: str | None  # x-servelab-replica
    server_timing: str | None
    done: float  # time.monotonic() when the response's last bytes arrived


class ServerDisconnected(ConnectionResetError):
    """The server closed the connection before a complete response."""


class Pool:
    """Up to `size` keep-alive connections to the host of `url`, each carrying one request at a time."""

    def __init__(self, url: str, body: bytes, headers: dict[str, str], size: int, timeout: float,
                 method: str = "POST") -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"the load generator speaks plain HTTP/1.1: give an http://host:port/... URL, got {url!r}")
        self.host, self.port = parts.hostname, parts.port or 80
        self.size, self.timeout = size, timeout
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        lines = [f"{method} {path} HTTP/1.1", f"Host: {parts.netloc}", f"Content-Length: {len(body)}",
                 *(f"{k}: {v}" for k, v in headers.items())]
        self._request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body  # the same bytes every time
        self._idle: list[_Connection] = []
        self._waiters: deque[asyncio.Future] = deque()
        self._open = 0  # connections open or being opened
        self._conns: set[_Connection] = set()  # connected ones, for the watchdog
        self._loop = asyncio.get_running_loop()
        self._tick = min(0.1, timeout / 10)
        self._watchdog = self._loop.call_later(self._tick, self._watch)

    async def send(self) -> Response:
        """Send the request and return its response; TimeoutError past `timeout`, OSError on a connection failure."""
        loop = self._loop
        deadline = loop.time() + self.timeout
        conn = self._idle.pop() if self._idle else None
        if conn is None or conn.transport is None:
            conn = await self._acquire(deadline)
        waiter = conn.send(self._request, deadline)
        try:
            response = await waiter
        except BaseException:  # timeout, connection error or cancellation: this connection is done
            conn.drop()
            raise
        if conn.keep_alive and conn.transport is not None:
            self._release(conn)
        else:
            conn.drop()
        return response

    def close(self) -> None:
        self._watchdog.cancel()
        for conn in self._idle:
            conn.drop()
        self._idle.clear()

    def _watch(self) -> None:
        """Give up on every request past its deadline (so at most one tick late), then look again in a tick."""
        now = self._loop.time()
        for conn in [c for c in self._conns if c.deadline <= now]:
            conn.expire()
        self._watchdog = self._loop.call_later(self._tick, self._watch)

    async def _acquire(self, deadline: float) -> _Connection:
        """An idle connection, a new one while under `size`, or the next one released before the deadline."""
        loop = self._loop
        while True:
            while self._idle:
                conn = self._idle.pop()
                if conn.transport is not None:
                    return conn
            if self._open < self.size:
                return await self._connect(deadline)
            waiter = loop.create_future()
            self._waiters.append(waiter)
            try:
                conn = await asyncio.wait_for(waiter, max(0.0, deadline - loop.time()))
            except BaseException:
                if waiter.done() and not waiter.cancelled() and waiter.result() is not None:
                    self._release(waiter.result())  # handed over just as we gave up: pass it on
                raise
            finally:
                if not waiter.done():
                    self._waiters.remove(waiter)
            if conn is not None and conn.transport is not None:
                return conn

    async def _connect(self, deadline: float) -> _Connection:
        self._open += 1
        loop = self._loop
        try:
            _, conn = await asyncio.wait_for(loop.create_connection(lambda: _Connection(self), self.host, self.port),
                                             max(0.0, deadline - loop.time()))
        except BaseException:
            self._closed()
            raise
        return conn

    def _release(self, conn: _Connection) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self._idle.append(conn)

    def _closed(self) -> None:
        """A connection is gone: one waiter may open a new one in its place."""
        self._open -= 1
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


async def get(url: str, timeout: float) -> Response:
    """GET `url` once on a connection of its own, closed after, as a kubelet's httpGet probe does."""
    pool = Pool(url, b"", {"Connection": "close"}, size=1, timeout=timeout, method="GET")
    try:
        return await pool.send()
    finally:
        pool.close()


class _Connection(asyncio.Protocol):
    """One keep-alive connection; also the parser's callback object for the response on it."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future | None = None
        self.deadline = math.inf  # loop time by which the current request must be answered
        self.keep_alive = False
        self.arrived = 0.0  # time.monotonic() when the last bytes arrived
        self._counted = True  # still counted in pool._open

    # One request.

    def send(self, request: bytes, deadline: float) -> asyncio.Future:
        """Write the request, then get ready for its answer: no callback runs before the caller awaits,
        and the bookkeeping after the write overlaps with the server's work instead of adding to latency."""
        self.transport.write(request)
        self.waiter = waiter = self.pool._loop.create_future()
        self.deadline = deadline
        self.chunks: list[bytes] = []
        self.nbytes = 0
        self.replica = self.server_timing = None
        self.headers_done = self.framed = self.keep_alive = False
        return waiter

    def expire(self) -> None:
        self._fail(asyncio.TimeoutError(f"no complete response within {self.pool.timeout:g} s"))

    def _fail(self, exc: BaseException) -> None:
        waiter, self.waiter = self.waiter, None
        self.deadline = math.inf
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self.drop()

    def drop(self) -> None:
        """Close this connection for good (a response may be half read: it can never be reused)."""
        if self.transport is not None:
            self.transport.abort()
            self.transport = None
            self.pool._conns.discard(self)
        if self._counted:
            self._counted = False
            self.pool._closed()

    # asyncio.Protocol.

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.pool._conns.add(self)

    def data_received(self, data: bytes) -> None:
        self.arrived = time.monotonic()  # the response ends when its last bytes arrive, not after our parsing
        if self.waiter is None:
            self.drop()  # bytes nobody asked for: the connection's state is unknown
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"malformed HTTP response: {exc}"))

    def eof_received(self) -> None:
        """The server will send nothing more: this connection must not carry another request."""
        self.keep_alive = False
        if self.waiter is None:
            self.transport = None  # idle in the pool: out of reach at once (it closes itself)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.pool._conns.discard(self)
        if self.waiter is not None and self.headers_done and not self.framed:
            self.arrived = time.monotonic()
            self.on_message_complete()  # a body without length or chunks ends when the server closes
            return
        reason = f" ({exc})" if exc else ""
        self._fail(ServerDisconnected(f"the server closed the connection before a complete response{reason}"))

    # httptools parser callbacks.

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"x-servelab-replica":
            self.replica = value.decode("latin-1")
        elif name == b"server-timing":
            self.server_timing = value.decode("latin-1")
        elif name == b"content-length" or name == b"transfer-encoding":
            self.framed = True

    def on_headers_complete(self) -> None:
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        if self.nbytes < ERROR_BODY_BYTES:
            self.chunks.append(body)
        self.nbytes += len(body)

    def on_message_complete(self) -> None:
        done = self.arrived
        waiter, self.waiter = self.waiter, None
        self.deadline = math.inf
        self.keep_alive = self.transport is not None and self.parser.should_keep_alive()
        head = self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)
        if waiter is not None and not waiter.done():
            waiter.set_result(Response(self.parser.get_status_code(), self.nbytes, head[:ERROR_BODY_BYTES],
                                       self.replica, self.server_timing, done))
