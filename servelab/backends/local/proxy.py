"""The Service: one stable address that spreads requests over the Ready pods behind it.

It runs as its own process (`python -m servelab.backends.local.proxy`) on uvloop when available,
so its event loop never competes with a Jupyter kernel's GIL. The owner sends the list of Ready
endpoints as JSON lines on stdin and waits for "ok" on stdout before it terminates a removed
pod; when stdin closes (the owner exited or was killed) the proxy exits too.

Two ways to balance, chosen per cluster (`service_mode`):
- "per-connection": plain TCP; each client connection is pinned to one pod for its whole life.
  This is what a real Service does (kube-proxy's iptables or IPVS rules pick a pod per
  connection): a client that keeps one connection open talks to one pod only.
- "per-request" (the default): HTTP-aware; every request goes to the next Ready pod in
  round-robin order, over kept-alive connections to the pods, as a service mesh or an L7
  ingress (Envoy, NGINX) would. It is the default because a learner's client keeps a few
  connections alive (hey -c 2, one aiohttp session): pinned per connection, "scale to 5" would
  leave three pods idle and the labs would measure the client's pool, not the replicas. The
  labs show the kube-proxy behaviour with per-connection.
Failures: a connection a pod refuses (it just died) is tried on the next pod, nothing having
been sent. A request on a kept-alive pod connection that closes before any byte of answer is
sent once more on a fresh connection (as HTTP clients do for reused connections: the pod may
have closed it while idle); so a killed pod's in-flight requests may be retried elsewhere,
which kube-proxy would not do. A request on a fresh connection that dies unanswered fails
with 502; with no Ready pod the answer is 503.

The hop is kept cheap because every fraction of a millisecond shows in the labs' latency
(`python -m bench local` measures it). Both modes are plain protocol callbacks (no task, future
or stream buffer per request); uvloop sets TCP_NODELAY on both sides. Per request, a message's
end is found from its head's Content-Length (Transfer-Encoding, Expect and Connection are
looked at only when present; no header dict), a pod's bytes go to the client before any
bookkeeping, nothing is copied on the usual path (a request that came in one read goes out as
the same object), and one connection per pod is opened as soon as the pod is Ready, so its
first request does not wait for a connect. The request's path is cut the same way: while a
client connection waits for its next request it holds an idle connection to the next pod in
turn, chosen when the previous answer ended, and the request's first bytes are written to it
before they are read (a per-pod Ready flag is checked first, so a pod that left the Service gets
nothing; a held connection the pod closed meanwhile is retried on a fresh one). Requests
pipelined in that first read all went to that pod, so such a client stays pinned to it, as a
TCP forward, for the rest of its connection (round-robin is lost for it, order is kept, and
closing is then the pod's business). On a small shared machine each Python step on this path
costs microseconds (caches are cold after every idle gap), so per request still costs a little
more than per connection: see the bench.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

MODES = ("per-request", "per-connection")
MAX_HEAD = 64 * 1024
# How a message's end is found: its Content-Length, its last chunk, or (a response without
# length) the pod closing the connection.
LENGTH, CHUNKED, UNTIL_CLOSE = -3, -2, -1  # negative: never a length
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class Flag:
    """Whether an endpoint is still Ready: a connection held for a client checks it before sending."""

    __slots__ = ("ready",)

    def __init__(self, ready: bool) -> None:
        self.ready = ready


GONE = Flag(False)


class Backends:
    """The Ready endpoints, a round-robin turn, and idle kept-alive connections per endpoint."""

    def __init__(self) -> None:
        self.endpoints: list[tuple[str, int]] = []
        self.flags: dict[tuple[str, int], Flag] = {}
        self.idle: dict[tuple[str, int], list[PodConnection]] = {}
        self.turn = -1

    def update(self, endpoints: list[tuple[str, int]]) -> list[tuple[str, int]]:
        """Route only to `endpoints` from now on; return the ones that are new."""
        new = [e for e in endpoints if e not in self.endpoints]
        self.endpoints = endpoints
        for gone in set(self.flags) - set(endpoints):
            self.flags.pop(gone).ready = False  # connections held by clients see it before sending
        for endpoint in new:
            self.flags[endpoint] = Flag(True)
        for gone in set(self.idle) - set(endpoints):
            for connection in self.idle.pop(gone):
                connection.transport.close()
        return new

    def pick(self) -> int:
        """The index of the next endpoint in round-robin order."""
        self.turn += 1
        return self.turn % len(self.endpoints) if self.endpoints else 0

    def take(self) -> PodConnection | None:
        """An idle connection to the next endpoint in turn, or None (then the turn is still used)."""
        if not self.endpoints:
            return None
        pool = self.idle.get(self.endpoints[self.pick()])
        while pool:
            connection = pool.pop()
            if not connection.closed:
                return connection
        self.turn -= 1  # none idle: the request that comes will connect to this endpoint
        return None

    def order(self, start: int) -> list[tuple[str, int]]:
        """All endpoints from index `start` on, then the others (fallbacks if it refuses)."""
        return self.endpoints[start:] + self.endpoints[:start]

    def release(self, connection: PodConnection) -> None:
        if connection.flag.ready and not connection.closed:
            self.idle.setdefault(connection.endpoint, []).append(connection)
        else:
            connection.transport.close()


# -- HTTP/1.1 message framing (just enough to know where a message ends) ----------------------


def _field(head: bytes, name: bytes) -> bytes | None:
    """The value of header `name` in a lower-cased head that ends with CRLF CRLF (the last wins).

    `name` is given as it appears after a line break, e.g. b"\\r\\ncontent-length:".
    """
    at = head.rfind(name)
    if at < 0:
        return None
    start = at + len(name)
    return head[start:head.index(b"\r\n", start)].strip()


def _body_length(head: bytes) -> int:
    """Body bytes after this lower-cased head: a length, CHUNKED, or UNTIL_CLOSE (no length given)."""
    coding = _field(head, b"\r\ntransfer-encoding:")
    if coding is not None and b"chunked" in coding:
        return CHUNKED
    length = _field(head, b"\r\ncontent-length:")
    if length is None:
        return UNTIL_CLOSE
    n = int(length)
    if n < 0:
        raise ValueError(f"negative content-length {n}")
    return n


def _chunked_end(buf: bytes | bytearray, pos: int) -> int | None:
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


def _error(status: str, message: str) -> bytes:
    body = json.dumps({"error": message}).encode()
    return (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
        f"x-servelab-proxy: service\r\n\r\n"
    ).encode() + body


# -- per-request ------------------------------------------------------------------------------


def _request_end(buf: bytes | bytearray) -> tuple[int | None, bytes | None]:
    """(where the request at the start of `buf` ends, its lower-cased head); None where not known yet."""
    head_end = buf.find(b"\r\n\r\n") + 4
    if head_end < 4:
        return None, None
    head = bytes(buf[:head_end]).lower()
    if b"\r\ntransfer-encoding:" in head or b"\r\ncontent-length:" in head:
        length = _body_length(head)
        return (_chunked_end(buf, head_end) if length == CHUNKED else head_end + length), head
    return head_end, head


def _expects_continue(head: bytes) -> bool:
    return b"\r\nexpect:" in head and _field(head, b"\r\nexpect:") == b"100-continue"


def _keeps_alive(head: bytes) -> bool:
    return b"\r\nconnection:" not in head or _field(head, b"\r\nconnection:") != b"close"


class ClientConnection(asyncio.Protocol):
    """A client's connection: cut its byte stream into requests, one in flight at a time.

    While it waits for a request it holds an idle connection to the next pod in turn (`pod`);
    a request's first bytes go straight to that pod, and only then are they read to find where
    the request ends. Bytes after that end wait here until the answer is through, except when a
    read holds more than one request (pipelining): those already went to the held pod, so the
    client stays pinned to that pod, as a TCP forward, for the rest of its connection.
    """

    def __init__(self, proxy: Proxy) -> None:
        self.proxy, self.transport = proxy, None
        self.buf: bytes | bytearray = b""  # received and not yet sent on (the current request, while streaming)
        self.busy, self.keep_alive = False, True
        self.pod: PodConnection | None = None  # held for the next request
        self.streaming: PodConnection | None = None  # has the current request's first `sent` bytes
        self.sent = 0
        self.pinned: PodConnection | None = None  # gets every byte from now on
        self.fresh = False  # the held connection was stale: send this request on a fresh one
        self.continued = False  # this request's 100 Continue was sent

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.pod = self.proxy.backends.take()

    def data_received(self, data: bytes) -> None:
        pod = self.pod
        if pod is not None and not self.busy and not self.buf:
            self.pod = None
            if pod.flag.ready and not pod.closed:
                pod.transport.write(data)  # first: the client waits on this, not on reading it
                pod.begin(data, self)
                self.busy, self.buf, self.streaming, self.sent = True, data, pod, len(data)
                self._stream()
                return
            self.proxy.backends.release(pod)  # its pod left the Service: closed there
        if self.pinned is not None:
            self.pinned.transport.write(data)
            if not self.pinned.forwarded:
                self.buf += data  # kept to send again if the pod connection was stale
            return
        if not self.buf:
            self.buf = data  # a whole request in one read is passed on as this object
        elif isinstance(self.buf, bytearray):
            self.buf += data
        else:
            self.buf = bytearray(self.buf) + data
        if self.streaming is not None:
            self._stream()
        elif not self.busy:
            self._next_request()

    def _stream(self) -> None:
        """Send the rest of the current request to `streaming` once its end is known."""
        pod, buf = self.streaming, self.buf
        try:
            end, head = _request_end(buf)
        except ValueError:
            pod.abandon()
            self.streaming = None
            self.respond(_error("400 Bad Request", "cannot read the request's length"), False)
            return
        if head is None and len(buf) > MAX_HEAD:
            pod.abandon()
            self.streaming = None
            self.respond(_error("431 Request Header Fields Too Large", "request head over 64 KiB"), False)
            return
        if head is not None and not self.continued and _expects_continue(head):
            self.continued = pod.drop_continue = True  # the pod's own 100 Continue, if any, is dropped
            self.transport.write(CONTINUE)
        if end is None or end > len(buf):  # all of it belongs to this request
            if len(buf) > self.sent:
                pod.transport.write(bytes(buf[self.sent:]))
                self.sent = len(buf)
            return
        if end > self.sent:
            pod.transport.write(bytes(buf[self.sent:end]))
        self.streaming = None
        self.keep_alive = _keeps_alive(head)
        if end < self.sent:  # the first read held more than one request, all sent to this pod
            self.pinned, pod.pinned, self.buf = pod, True, bytes(buf[:self.sent])
            return
        if end == len(buf):
            pod.request, self.buf = bytes(buf), b""
        else:
            pod.request, self.buf = bytes(buf[:end]), buf[end:]

    def stream_lost(self) -> None:
        """The held connection closed unanswered before the request was all sent: send it afresh."""
        self.streaming, self.busy, self.fresh = None, False, True
        self._next_request()

    def _next_request(self) -> None:
        buf = self.buf
        head_end = buf.find(b"\r\n\r\n") + 4
        if head_end < 4:
            if len(buf) > MAX_HEAD:
                self.respond(_error("431 Request Header Fields Too Large", "request head over 64 KiB"), False)
            return
        if b"\r\nexpect:" in bytes(buf[:head_end]).lower():
            if not self.continued and _expects_continue(bytes(buf[:head_end]).lower()):
                self.transport.write(CONTINUE)  # we take the body ourselves, and the pod need not know
            self.continued = True
            buf = self.buf = _without_expect(buf, head_end)
        try:
            end, head = _request_end(buf)
        except ValueError:
            self.respond(_error("400 Bad Request", "cannot read the request's length"), False)
            return
        if end is None or end > len(buf):
            return
        if end == len(buf):
            request, self.buf = bytes(buf), b""  # bytes(bytes) is the same object: no copy
        else:
            request, self.buf = bytes(buf[:end]), buf[end:]
        self.busy = True
        self.keep_alive = _keeps_alive(head)
        fresh, self.fresh = self.fresh, False
        self.proxy.dispatch(request, self, fresh)

    def forward(self, data: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(data)

    def done(self, pod_keeps_alive: bool) -> None:
        """The response is complete: close if either side asked to, else serve the next request."""
        self.busy, self.continued = False, False
        if self.transport.is_closing():
            return
        if self.streaming is not None:  # answered before the request was all sent: give up on it
            self.streaming = None
            pod_keeps_alive = False
        if not (self.keep_alive and pod_keeps_alive):
            self.transport.close()
            return
        if self.buf:
            self._next_request()
        if not self.busy and not self.buf and self.pod is None:
            self.pod = self.proxy.backends.take()  # held for the next request, off its path

    def respond(self, response: bytes, pod_keeps_alive: bool) -> None:
        """Answer from the proxy itself (errors)."""
        self.forward(response)
        self.done(pod_keeps_alive)

    def connection_lost(self, exc) -> None:
        self.buf = b""
        if self.pod is not None:
            self.proxy.backends.release(self.pod)
            self.pod = None
        if self.pinned is not None:
            self.pinned.transport.close()


def _without_expect(buf: bytes | bytearray, head_end: int) -> bytes:
    lines = bytes(buf[:head_end]).split(b"\r\n")
    return b"\r\n".join(l for l in lines if not l.lower().startswith(b"expect:")) + bytes(buf[head_end:])


class PodConnection(asyncio.Protocol):
    """A kept-alive connection to one pod: send one request, pass its one response on as it comes.

    Every byte from the pod goes to the client at once, before anything else is done with it
    (as a TCP forward would); only then is the head read, to learn how many bytes make the
    response, so the connection can serve the next request once they have passed.
    """

    def __init__(self, proxy: Proxy, endpoint: tuple[str, int]) -> None:
        self.proxy, self.endpoint = proxy, endpoint
        self.flag = proxy.backends.flags.get(endpoint, GONE)
        self.transport, self.closed = None, False
        self.client: ClientConnection | None = None
        self.request, self.reused = b"", False
        self.framing: int | None = None  # LENGTH, CHUNKED or UNTIL_CLOSE; None: head not read yet
        self.remaining = 0  # LENGTH: bytes still to come
        self.unread = b""  # bytes from the start of the (next) head, while it is incomplete
        self.chunks = bytearray()  # CHUNKED: the body so far (its end is found by scanning)
        self.forwarded, self.keep_alive = False, True
        self.drop_continue = False  # the proxy answered 100 Continue itself: drop the pod's
        self.pinned = False  # a plain byte forward for the rest of the client's connection

    def connection_made(self, transport) -> None:
        self.transport = transport

    def begin(self, request: bytes, client: ClientConnection, reused: bool = True) -> None:
        """`request` (or its first bytes) was just written: its answer goes to `client`."""
        self.client, self.request, self.reused = client, request, reused
        self.framing, self.unread, self.forwarded, self.drop_continue = None, b"", False, False

    def send(self, request: bytes, client: ClientConnection, reused: bool) -> None:
        self.begin(request, client, reused)
        self.transport.write(request)

    def abandon(self) -> None:
        """Close without telling the client (it answers for itself)."""
        self.client = None
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        client = self.client
        if client is None:
            return  # nothing asked: a pod has nothing to say on an idle connection
        if self.drop_continue:
            self.drop_continue = False
            if data.startswith(b"HTTP/1.1 100 ") and b"\r\n\r\n" in data:
                data = data[data.index(b"\r\n\r\n") + 4:]
                if not data:
                    return
        if not client.transport.is_closing():
            client.transport.write(data)  # first: the client waits for these bytes, not for the bookkeeping
        self.forwarded = True
        if self.pinned:
            return
        framing = self.framing
        if framing is None:
            if not self._read_head(self.unread + data if self.unread else data):
                return
        elif framing == LENGTH:
            self.remaining -= len(data)
        elif framing == CHUNKED:
            self.chunks += data
        if self.framing == LENGTH:
            if self.remaining > 0:
                return
        elif self.framing == UNTIL_CLOSE or _chunked_end(self.chunks, 0) is None:
            return  # UNTIL_CLOSE: all of it, at close
        self.client = None
        if self.keep_alive:
            self.proxy.backends.release(self)
        else:
            self.transport.close()
        client.done(True)

    def _read_head(self, data: bytes) -> bool:
        """Learn the response's framing from its head (after any interim 1xx heads); False: incomplete."""
        while True:
            head_end = data.find(b"\r\n\r\n") + 4
            if head_end < 4:
                self.unread = data
                return False
            if data[9:10] != b"1":  # b"HTTP/1.1 200 OK": not an interim answer
                break
            data = data[head_end:]
        head = data[:head_end].lower()
        self.unread = b""
        self.keep_alive = b"\r\nconnection:" not in head or _field(head, b"\r\nconnection:") != b"close"
        if self.request.startswith(b"HEAD ") or data[9:12] in (b"204", b"304"):
            length = 0
        elif b"\r\ncontent-length:" in head or b"\r\ntransfer-encoding:" in head:
            length = _body_length(head)
        else:
            length = UNTIL_CLOSE
        if length == CHUNKED:
            self.framing, self.chunks = CHUNKED, bytearray(data[head_end:])
        elif length == UNTIL_CLOSE:
            self.framing = UNTIL_CLOSE
        else:
            self.framing, self.remaining = LENGTH, head_end + length - len(data)
        return True

    def connection_lost(self, exc) -> None:
        self.closed = True
        client, self.client = self.client, None
        if client is None:
            return
        if self.pinned:
            if self.forwarded or not self.reused:
                client.transport.close()
            else:  # the pod had closed this idle connection: send all again on a fresh one
                self.proxy.repin(client)
        elif self.forwarded:  # close-delimited responses end here; anything else was cut short
            client.done(False)
        elif client.streaming is self:  # the request was not all sent: the client sends it afresh
            if self.reused:
                client.stream_lost()
            else:
                client.streaming = None
                client.respond(_error("502 Bad Gateway", f"pod {self.endpoint[0]}:{self.endpoint[1]} closed the "
                                      "connection before answering"), False)
        elif self.reused:  # the pod had closed this idle connection: retry on a fresh one
            self.proxy.dispatch(self.request, client, fresh=True)
        else:
            client.respond(_error("502 Bad Gateway", f"pod {self.endpoint[0]}:{self.endpoint[1]} closed the "
                                  "connection before answering"), True)


class Proxy:
    def __init__(self, name: str, preopen: bool) -> None:
        self.name, self.preopen = name, preopen
        self.backends = Backends()
        self.loop = asyncio.get_running_loop()
        self._tasks: set[asyncio.Task] = set()  # connects in progress (the loop keeps only weak references)

    def dispatch(self, request: bytes, client: ClientConnection, fresh: bool = False) -> None:
        """Send `request` to the next pod: over an idle connection at once, else after connecting."""
        backends = self.backends
        endpoints = backends.endpoints
        if not endpoints:
            client.respond(_error("503 Service Unavailable", f"no Ready pod behind service {self.name}"), True)
            return
        start = backends.pick()
        if not fresh:
            pool = backends.idle.get(endpoints[start])
            while pool:
                connection = pool.pop()
                if not connection.closed:
                    connection.send(request, client, reused=True)
                    return
        self._spawn(self._connect_and_send(backends.order(start), request, client))

    def _spawn(self, coroutine) -> None:
        task = self.loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self, endpoint: tuple[str, int]) -> PodConnection | None:
        try:
            _, connection = await self.loop.create_connection(lambda: PodConnection(self, endpoint), *endpoint)
        except OSError:
            return None  # refused: this pod is gone or not listening yet
        return connection

    async def _connect_and_send(self, order, request: bytes, client: ClientConnection) -> None:
        for endpoint in order:
            connection = await self._connect(endpoint)
            if connection is not None:
                connection.send(request, client, reused=False)
                return
        client.respond(_error("503 Service Unavailable", f"no pod behind service {self.name} accepted a connection"), True)

    def repin(self, client: ClientConnection) -> None:
        """Send a pinned client's bytes so far to a fresh connection and pin the client to it."""
        self._spawn(self._repin(client))

    async def _repin(self, client: ClientConnection) -> None:
        for endpoint in self.backends.order(self.backends.pick()):
            connection = await self._connect(endpoint)
            if connection is not None and client.transport.is_closing():
                connection.transport.close()
                return
            if connection is not None:
                connection.begin(client.buf, client, reused=False)
                connection.pinned, client.pinned = True, connection
                connection.transport.write(bytes(client.buf))
                return
        client.transport.close()

    async def _open_idle(self, endpoint: tuple[str, int]) -> None:
        """Have one connection to a new pod ready before its first request."""
        connection = await self._connect(endpoint)
        if connection is not None:
            self.backends.release(connection)

    async def control(self) -> None:
        """Read endpoint lists from stdin, answer "ok N"; return when stdin closes (owner gone)."""
        reader = asyncio.StreamReader()
        await self.loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            message = json.loads(line)
            new = self.backends.update([(host, int(port)) for host, port in message["endpoints"]])
            print(f"ok {message['seq']}", flush=True)
            if self.preopen:
                for endpoint in new:
                    self._spawn(self._open_idle(endpoint))


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

    def __init__(self, proxy: Proxy) -> None:
        super().__init__()
        self.proxy = proxy

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.proxy._spawn(self._connect())

    async def _connect(self) -> None:
        backends, loop = self.proxy.backends, self.proxy.loop
        for endpoint in backends.order(backends.pick()):
            try:
                await loop.create_connection(lambda: Splice(self), *endpoint)
                return
            except OSError:
                continue  # refused: that pod just went away; try the next one
        self.transport.close()


async def serve(name: str, host: str, port: int, mode: str) -> None:
    proxy = Proxy(name, preopen=mode == "per-request")
    protocol = ClientSplice if mode == "per-connection" else ClientConnection
    server = await proxy.loop.create_server(lambda: protocol(proxy), host, port, backlog=1024, reuse_address=True)
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
