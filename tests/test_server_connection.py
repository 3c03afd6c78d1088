"""Read deadlines: a client that trickles its headers or its body is answered 408 and cut off."""

from __future__ import annotations

import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from servelab.server import ServerProcess

TIMEOUT_S = 0.5
SLOW_CLIENTS = 20


@pytest.fixture(scope="module")
def server():
    with ServerProcess(header_timeout=TIMEOUT_S, body_timeout=TIMEOUT_S) as running:
        yield running


def _trickle(port: int, first: bytes, then: bytes, every_s: float = 0.2, give_up_s: float = 20) -> tuple[bytes, float]:
    """Send `first`, then `then` every `every_s` until the server answers and closes: (answer, seconds)."""
    start = time.monotonic()
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=give_up_s) as sock:
        sock.sendall(first)
        sock.settimeout(every_s)
        while time.monotonic() - start < give_up_s:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                try:
                    sock.sendall(then)
                except OSError:  # the server closed while we were still sending
                    pass
                continue
            except ConnectionResetError:
                break
            if not chunk:
                break
            answer += chunk
    return answer, time.monotonic() - start


def _status_and_error(answer: bytes) -> tuple[str, str]:
    head, body = answer.split(b"\r\n\r\n", 1)
    return head.split(b"\r\n")[0].decode(), json.loads(body)["error"]


def test_headers_sent_a_line_at_a_time_get_a_408_and_the_connection_closes(server):
    first = b"POST /v1/models/my-model:predict HTTP/1.1\r\nHost: x\r\n"
    with ThreadPoolExecutor(SLOW_CLIENTS) as pool:
        results = list(pool.map(lambda _: _trickle(server.port, first, b"X-Slow: 1\r\n"), range(SLOW_CLIENTS)))
    for answer, seconds in results:
        status, error = _status_and_error(answer)
        assert status == "HTTP/1.1 408 Request Timeout" and "headers not received within 0.5 s" in error
        assert seconds < 10 * TIMEOUT_S  # cut off, not held until the client gives up (20 s)


def test_a_body_that_stops_arriving_gets_a_408_and_the_server_goes_on(server):
    head = b"POST /v1/models/my-model:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
    answer, seconds = _trickle(server.port, head + b'{"instances": ', b"", every_s=0.2)
    status, error = _status_and_error(answer)
    assert status == "HTTP/1.1 408 Request Timeout" and "body not received within 0.5 s" in error
    assert seconds < 10 * TIMEOUT_S
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        body = b'{"instances": [1.0, 2.0, 5.0]}'
        sock.sendall(b"POST /v1/models/my-model:predict HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                     % (len(body), body))
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK")


def test_a_request_sent_in_pieces_within_the_deadline_is_served(server):
    body = b'{"instances": [1.0, 2.0, 5.0]}'
    pieces = [b"POST /v1/models/my-model:predict HTTP/1.1\r\n", b"Host: x\r\nContent-Length: %d\r\n\r\n" % len(body),
              body[:10], body[10:]]
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        for piece in pieces:
            sock.sendall(piece)
            time.sleep(TIMEOUT_S / 5)
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b'{"predictions": [0.75]}')
