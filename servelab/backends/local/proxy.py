"""The Service: one stable address that spreads requests over the Ready pods behind it.

It runs as its own process (`python -m servelab.backends.local.proxy`) on uvloop when available,
so its event loop never competes with a Jupyter kernel's GIL. The owner sends the list of Ready
endpoints as JSON lines on stdin and waits for "ok" on stdout before it terminates a removed
pod; when stdin closes (the owner exited or was killed) the proxy exits too.

Two ways to balance, chosen per cluster (`service_mode`):
- "per-request" (default): HTTP-aware; every request goes to the next Ready pod in round-robin
  order, over kept-alive connections to the pods. Like an L7 proxy (Envoy, an ingress).
- "per-connection": plain TCP; each client connection is pinned to one pod for its whole life.
  Like kube-proxy: a client that keeps one connection open talks to one pod only.
Failures: a connection a pod refuses (it just died) is tried on the next pod, nothing having
been sent. A request on a kept-alive pod connection that closes before any byte of answer is
sent once more on a fresh connection (as HTTP clients do for reused connections: the pod may
have closed it while idle); so a killed pod's in-flight requests may be retried elsewhere,
which kube-proxy would not do. A request on a fresh connection that dies unanswered fails
with 502; with no Ready pod the answer is 503.

Both modes are written as plain asyncio protocol callbacks (no tasks or stream buffers on the
request path), which halves the proxy's CPU per request compared with asyncio streams.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import sys

MODES = ("per-request", "per-connection")
MAX_HEAD = 64 * 1024
CLOSE_DELIMITED = -1  # a response without length: it ends when the pod closes the connection


class Backends:
    """The Ready endpoints, a round-robin cursor, and idle kept-alive connections per endpoint."""

    def __init__(self) -> None:
        self.endpoints: list[tuple[str, int]] = []
        self.idle: dict[tuple[str, int], list[PodConnection]] = {}
        self._cursor = itertools.count()

    def update(self, endpoints: list[tuple[str, int]]) -> None:
        self.endpoints = endpoints
        for gone in set(self.idle) - set(endpoints):
            for connection in self.idle.pop(gone):
                connection.transport.close()

    def order(self) -> list[tuple[str, int]]:
        """All endpoints, starting at the next one in round-robin order (the rest are fallbacks)."""
        eps = self.endpoints
        if not eps:
            return []
        start = next(self._cursor) % len(eps)
        return eps[start:] + eps[:start]

    def take_idle(self, endpoint: tuple[str, int]) -> PodConnection | None:
        pool = self.idle.get(endpoint)
        while pool:
            connection = pool.pop()
            if not connection.closed:
                return connection
        return None

    def release(self, connection: PodConnection) -> None:
        if connection.endpoint in self.endpoints and not connection.closed:
            self.idle.setdefault(connection.endpoint, []).append(connection)
        else:
            connection.transport.close()


# -- HTTP/1.1 message framing (just enough to know where a message ends) ----------------------


def _headers(head: bytes) -> dict[bytes, bytes]:
    """Lower-cased header names -> values (repeated headers: the last one wins)."""
    found = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        found[name.strip().lower()] = value.strip()
    return found


def _chunked_end(buf: bytearray, pos: int) -> int | None:
    """Where a chunked body starting at `pos` ends (after its trailers), or None if incomplete."""
    while True:
        line_end = buf.find(b"\r\n", pos)
        if line_end < 0:
            return None
        size = int(bytes(buf[pos:line_end]).split(b";")[0], 16)
        pos = line_end + 2
        if size == 0:
            while True:  # trailers, then an empty line
                line_end = buf.find(b"\r\n", pos)
                if line_end < 0:
                    return None
                if line_end == pos:
                    return pos + 2
                pos = line_end + 2
        pos += size + 2
        if pos > len(buf):
            return None


def _message_end(buf: bytearray, head_end: int, headers: dict, is_response: bool) -> int | None:
    if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
        return _chunked_end(buf, head_end)
    length = headers.get(b"content-length")
    if length is not None:
        end = head_end + int(length)
        return end if len(buf) >= end else None
    return CLOSE_DELIMITED if is_response else head_end


def _error(status: str, message: str) -> bytes:
    body = json.dumps({"error": message}).encode()
    return (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
        f"x-servelab-proxy: service\r\n\r\n"
    ).encode() + body


# -- per-request ------------------------------------------------------------------------------


class ClientConnection(asyncio.Protocol):
    """A client's connection: cut its byte stream into requests, one in flight at a time."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy, self.buf, self.busy, self.transport = proxy, bytearray(), False, None
        self.keep_alive = True

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.busy:
            self._next_request()

    def _next_request(self) -> None:
        buf = self.buf
        head_end = buf.find(b"\r\n\r\n") + 4
        if head_end < 4:
            if len(buf) > MAX_HEAD:
                self.respond(_error("431 Request Header Fields Too Large", "request head over 64 KiB"), False)
            return
        headers = _headers(bytes(buf[:head_end]))
        if headers.get(b"expect", b"").lower() == b"100-continue":
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # we take the body ourselves
            head = b"\r\n".join(l for l in bytes(buf[:head_end]).split(b"\r\n") if not l.lower().startswith(b"expect:"))
            buf[:head_end] = head
            head_end = len(head)
        try:
            end = _message_end(buf, head_end, headers, is_response=False)
        except ValueError:
            self.respond(_error("400 Bad Request", "cannot read the request's length"), False)
            return
        if end is None:
            return
        request = bytes(buf[:end])
        del buf[:end]
        self.busy = True
        self.keep_alive = headers.get(b"connection", b"").lower() != b"close"
        self.proxy.dispatch(request, request.split(b" ", 1)[0], self)

    def forward(self, data: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(data)

    def done(self, pod_keeps_alive: bool) -> None:
        """The response is complete: close if either side asked to, else serve the next request."""
        self.busy = False
        if self.transport.is_closing():
            return
        if not (self.keep_alive and pod_keeps_alive):
            self.transport.close()
        elif self.buf:
            self._next_request()

    def respond(self, response: bytes, pod_keeps_alive: bool) -> None:
        """Answer from the proxy itself (errors)."""
        self.forward(response)
        self.done(pod_keeps_alive)

    def connection_lost(self, exc) -> None:
        self.buf.clear()


class PodConnection(asyncio.Protocol):
    """A kept-alive connection to one pod: send one request, pass its one response on as it comes.

    Bytes go to the client as soon as they arrive (as a TCP forward would), while the framing is
    followed to know where the response ends and the connection can serve the next request.
    """

    def __init__(self, proxy: Proxy, endpoint: tuple[str, int]) -> None:
        self.proxy, self.endpoint = proxy, endpoint
        self.transport, self.buf, self.closed = None, bytearray(), False
        self.client: ClientConnection | None = None
        self.request, self.method, self.reused = b"", b"", False
        self.head_end, self.headers, self.bodyless, self.forwarded = 0, {}, False, 0

    def connection_made(self, transport) -> None:
        self.transport = transport

    def send(self, request: bytes, method: bytes, client: ClientConnection, reused: bool) -> None:
        self.request, self.method, self.client, self.reused = request, method, client, reused
        self.buf.clear()
        self.head_end = self.forwarded = 0
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.client is None:
            return
        if not self.head_end and not self._read_head():
            return
        if self.forwarded < len(self.buf):
            self.client.forward(bytes(self.buf[self.forwarded:]))
            self.forwarded = len(self.buf)
        end = self.head_end if self.bodyless else _message_end(self.buf, self.head_end, self.headers, is_response=True)
        if end is None or end == CLOSE_DELIMITED:
            return  # more to come (or all of it, at close)
        client, self.client = self.client, None
        if self.headers.get(b"connection", b"").lower() != b"close":
            self.proxy.backends.release(self)
        else:
            self.transport.close()
        client.done(True)

    def _read_head(self) -> bool:
        """Parse the response head once it is complete; interim 1xx answers are passed on whole."""
        while True:
            head_end = self.buf.find(b"\r\n\r\n") + 4
            if head_end < 4:
                return False
            status = int(bytes(self.buf[:head_end]).split(b" ", 2)[1])
            if not 100 <= status < 200:
                break
            self.client.forward(bytes(self.buf[:head_end]))
            del self.buf[:head_end]
        self.head_end, self.headers = head_end, _headers(bytes(self.buf[:head_end]))
        self.bodyless = self.method == b"HEAD" or status in (204, 304)
        return True

    def connection_lost(self, exc) -> None:
        self.closed = True
        client, self.client = self.client, None
        if client is None:
            return
        if self.forwarded:  # close-delimited responses end here; anything else was cut short
            client.done(False)
        elif self.reused and not self.buf:  # the pod had closed this idle connection: retry fresh
            self.proxy.dispatch(self.request, self.method, client, fresh=True)
        else:
            client.respond(_error("502 Bad Gateway", f"pod {self.endpoint[0]}:{self.endpoint[1]} closed the "
                                  "connection before answering"), True)


class Proxy:
    def __init__(self, name: str) -> None:
        self.name = name
        self.backends = Backends()

    def dispatch(self, request: bytes, method: bytes, client: ClientConnection, fresh: bool = False) -> None:
        """Send `request` to the next pod: over an idle connection at once, else after connecting."""
        order = self.backends.order()
        if not order:
            client.respond(_error("503 Service Unavailable", f"no Ready pod behind service {self.name}"), True)
            return
        idle = None if fresh else self.backends.take_idle(order[0])
        if idle is not None:
            idle.send(request, method, client, reused=True)
        else:
            asyncio.get_running_loop().create_task(self._connect_and_send(order, request, method, client))

    async def _connect_and_send(self, order, request: bytes, method: bytes, client: ClientConnection) -> None:
        loop = asyncio.get_running_loop()
        for endpoint in order:
            try:
                _, connection = await loop.create_connection(lambda: PodConnection(self, endpoint), *endpoint)
            except OSError:
                continue  # refused: this pod is gone or not listening yet; try the next one
            connection.send(request, method, client, reused=False)
            return
        client.respond(_error("503 Service Unavailable", f"no pod behind service {self.name} accepted a connection"), True)

    async def control(self) -> None:
        """Read endpoint lists from stdin, answer "ok N"; return when stdin closes (owner gone)."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            message = json.loads(line)
            self.backends.update([(host, int(port)) for host, port in message["endpoints"]])
            print(f"ok {message['seq']}", flush=True)


# -- per-connection ---------------------------------------------------------------------------


class Splice(asyncio.Protocol):
    """One side of a per-connection (TCP) forward: bytes in on this side go out on the peer's."""

    def __init__(self, peer: Splice | None = None) -> None:
        self.peer, self.transport, self.pending = peer, None, []

    def connection_made(self, transport) -> None:
        self.transport = transport
        if self.peer is not None:  # the pod side is up: send what the client already sent
            self.peer.peer = self
            for data in self.peer.pending:
                transport.write(data)
            self.peer.pending = []

    def data_received(self, data: bytes) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.write(data)
        else:
            self.pending.append(data)

    def connection_lost(self, exc) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()

    def pause_writing(self) -> None:  # the receiving side is slow: stop reading the sending side
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()


class ClientSplice(Splice):
    """The client side of a per-connection forward: picks a pod (round-robin) when it connects."""

    def __init__(self, backends: Backends) -> None:
        super().__init__()
        self.backends = backends

    def connection_made(self, transport) -> None:
        self.transport = transport
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        for endpoint in self.backends.order():
            try:
                await loop.create_connection(lambda: Splice(self), *endpoint)
                return
            except OSError:
                continue  # refused: that pod just went away; try the next one
        self.transport.close()


async def serve(name: str, host: str, port: int, mode: str) -> None:
    proxy = Proxy(name)
    if mode == "per-connection":
        factory = lambda: ClientSplice(proxy.backends)  # noqa: E731
    else:
        factory = lambda: ClientConnection(proxy)  # noqa: E731
    server = await asyncio.get_running_loop().create_server(factory, host, port, backlog=1024, reuse_address=True)
    print(f"listening {server.sockets[0].getsockname()[1]}", flush=True)
    await proxy.control()
    # The owner closed the pipe: stop now, without waiting for (or logging) open connections.
    os._exit(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--name", default="service")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=MODES, default="per-request")
    args = parser.parse_args(argv)
    try:
        from uvloop import run
    except ImportError:  # uvloop is optional: plain asyncio works, a little slower
        run = asyncio.run
    try:
        run(serve(args.name, args.host, args.port, args.mode))
    except OSError as error:
        print(f"error {error}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
