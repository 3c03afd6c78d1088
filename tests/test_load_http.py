"""The generator's own HTTP client against a raw socket server that misbehaves byte by byte.

Each path of the server below does one thing a real server or network may do: chunked bodies,
a close after the response (announced or not), a body that ends at close, a reset in the middle
of a body, no answer at all, bytes that are not HTTP. The client must return every complete
response, raise (never hang or return a half response) on every broken one, and never reuse a
connection whose state it cannot know. The last test runs it against the real servelab server.
"""

from __future__ import annotations

import asyncio
import socket
import socketserver
import struct
import threading
import time

import pytest

from servelab.load import generator
from servelab.load.http import ERROR_BODY_BYTES, Pool, ServerDisconnected

BODY = b'{"instances":[[1.0,2.0,5.0]]}'
OK_HEADERS = b"x-servelab-replica: raw-0\r\nServer-Timing: infer;dur=0.5\r\n"


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        server: RawServer = self.server
        with server.lock:
            server.connections += 1
            server.open_now += 1
            server.most_open = max(server.most_open, server.open_now)
        try:
            reader = self.request.makefile("rb")
            while (path := self._read_request(reader)) is not None:
                if not getattr(self, "do_" + path.strip("/").replace("-", "_"))():
                    break
        except OSError:
            pass
        finally:
            with server.lock:
                server.open_now -= 1

    def _read_request(self, reader) -> str | None:
        line = reader.readline()
        if not line:
            return None
        length = 0
        while (header := reader.readline()) not in (b"\r\n", b""):
            name, _, value = header.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        reader.read(length)
        return line.split()[1].decode()

    def send(self, data: bytes) -> None:
        self.request.sendall(data)

    # Each do_* answers one request; True keeps the connection for the next one.

    def do_ok(self) -> bool:
        self.send(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n" + OK_HEADERS + b"\r\nhello")
        return True

    def do_chunked(self) -> bool:
        chunks = [b"ab", b"cde" * 100, b"f"]
        body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
        self.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n" + OK_HEADERS + b"\r\n")
        for i in range(0, len(body), 7):  # in pieces, as a slow network would deliver it
            self.send(body[i:i + 7])
        return True

    def do_late_tail(self) -> bool:
        """The head and most of the body now, the last byte a moment later (noting when it left)."""
        self.send(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhell")
        time.sleep(0.2)
        self.server.tail_sent = time.monotonic()
        self.send(b"o")
        return True

    def do_big(self) -> bool:
        self.send(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 100000\r\n\r\n" + b"x" * 100_000)
        return True

    def do_close(self) -> bool:
        self.send(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
        return False

    def do_close_unannounced(self) -> bool:
        self.send(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
        return False

    def do_until_close(self) -> bool:
        self.send(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nthe body ends when the server closes")
        return False

    def do_reset(self) -> bool:
        self.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nonly part of the bo")
        self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
        return False

    def do_silent(self) -> bool:
        self.request.recv(1)  # never answers; returns when the client goes away
        return False

    def do_reset_then_ok(self) -> bool:
        return self.do_reset() if self.server.first_call() else self.do_ok()

    def do_silent_then_ok(self) -> bool:
        return self.do_silent() if self.server.first_call() else self.do_ok()

    def do_garbage(self) -> bool:
        self.send(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
        return True


class RawServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.connections = self.open_now = self.most_open = 0
        self._called = False

    def first_call(self) -> bool:
        with self.lock:
            first, self._called = not self._called, True
        return first

    @property
    def base(self) -> str:
        return "http://127.0.0.1:%d" % self.server_address[1]


@pytest.fixture
def raw():
    server = RawServer()
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def run(coro_fn, *args):
    """Run a coroutine on the generator's own event loop kind (uvloop when installed)."""
    loop = generator.new_event_loop()
    try:
        return loop.run_until_complete(coro_fn(*args))
    finally:
        loop.close()


async def posts(url: str, n: int = 1, size: int = 4, timeout: float = 5.0, concurrent: bool = False) -> list:
    """n requests through one pool, one after another (or all at once); each a Response or an exception."""
    pool = Pool(url, BODY, {"Content-Type": "application/json"}, size=size, timeout=timeout)

    async def one():
        try:
            return await pool.send()
        except Exception as exc:  # noqa: BLE001 (the test looks at what was raised)
            return exc

    try:
        if concurrent:
            return list(await asyncio.gather(*(one() for _ in range(n))))
        return [await one() for _ in range(n)]
    finally:
        pool.close()


def test_keep_alive_reuses_one_connection_and_reads_the_two_headers(raw):
    responses = run(posts, raw.base + "/ok", 20)
    assert [r.status for r in responses] == [200] * 20
    r = responses[0]
    assert (r.nbytes, r.head, r.replica, r.server_timing) == (5, b"hello", "raw-0", "infer;dur=0.5")
    assert raw.connections == 1


def test_chunked_body_in_pieces(raw):
    responses = run(posts, raw.base + "/chunked", 3)
    assert [(r.status, r.nbytes) for r in responses] == [(200, 303)] * 3
    assert responses[0].head.startswith(b"abcdecde") and responses[0].replica == "raw-0"
    assert raw.connections == 1  # a chunked response ends at its last chunk: the connection is kept


def test_done_is_when_the_last_byte_arrived(raw):
    """Latency ends at the response's last bytes: not at its first (too early), not after our bookkeeping."""

    async def one():
        responses = await posts(raw.base + "/late-tail")
        return responses[0], time.monotonic()

    response, returned = run(one)
    assert response.head == b"hello"
    assert raw.tail_sent <= response.done <= returned


def test_large_error_body_is_counted_and_only_its_start_kept(raw):
    [r] = run(posts, raw.base + "/big")
    assert (r.status, r.nbytes, len(r.head)) == (503, 100_000, ERROR_BODY_BYTES)


def test_close_after_response_reconnects(raw):
    responses = run(posts, raw.base + "/close", 5)
    assert [r.status for r in responses] == [200] * 5
    assert raw.connections == 5


def test_unannounced_close_is_never_a_hang_or_a_half_response(raw):
    """The server closes a keep-alive connection without saying so. When its close is seen before the
    next request, the client reconnects; when they cross, that request fails and is recorded as such."""
    responses = run(posts, raw.base + "/close-unannounced", 5)
    assert responses[0].status == 200
    assert all(isinstance(r, ServerDisconnected) or (r.status, r.head) == (200, b"hello") for r in responses)


def test_body_until_close(raw):
    [r] = run(posts, raw.base + "/until-close")
    assert (r.status, r.head) == (200, b"the body ends when the server closes")


def test_reset_mid_response_raises_and_the_next_request_reconnects(raw):
    error, ok = run(posts, raw.base + "/reset-then-ok", 2, 1)
    assert isinstance(error, ServerDisconnected) and "before a complete response" in str(error)
    assert ok.status == 200 and raw.connections == 2


def test_timeout_raises_and_drops_the_connection(raw):
    error, ok = run(posts, raw.base + "/silent-then-ok", 2, 1, 0.2)
    assert isinstance(error, asyncio.TimeoutError) and str(error) == "no complete response within 0.2 s"
    assert ok.status == 200 and raw.connections == 2  # the timed-out connection was not reused


def test_not_http_is_an_error(raw):
    [error] = run(posts, raw.base + "/garbage")
    assert isinstance(error, ConnectionError) and "malformed HTTP response" in str(error)


def test_the_pool_never_opens_more_than_its_size(raw):
    responses = run(posts, raw.base + "/chunked", 12, 3, 5.0, True)
    assert [r.status for r in responses] == [200] * 12
    assert raw.most_open <= 3 and raw.connections <= 3


def test_waiting_for_a_pooled_connection_counts_toward_the_timeout(raw):
    async def timed():
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        responses = await posts(raw.base + "/silent", 3, 1, 0.3, True)
        return responses, loop.time() - t0

    responses, waited = run(timed)
    assert all(isinstance(r, asyncio.TimeoutError) for r in responses)
    assert 0.29 <= waited < 2.0  # all three gave up at their one deadline, queued or not


def test_refused_and_unsupported_urls():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    [error] = run(posts, f"http://127.0.0.1:{port}/x")
    assert isinstance(error, ConnectionRefusedError)

    async def https():
        Pool("https://example.org/", BODY, {}, size=1, timeout=1.0)

    with pytest.raises(ValueError, match="plain HTTP/1.1"):
        run(https)


def test_against_the_servelab_server(servelab_server):
    responses = run(posts, servelab_server.predict_url, 50, 4, 10.0, True)
    assert {r.status for r in responses} == {200}
    assert all(r.replica and "infer;dur=" in r.server_timing and b"predictions" in r.head for r in responses)
    assert len({r.done for r in responses}) > 1
