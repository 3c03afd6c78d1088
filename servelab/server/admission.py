"""Admission: how much work a server takes on, and the answer past that.

Two bounds, both checked before a request costs anything but the bytes it arrived in:
- `max_connections` open connections: past it a new connection gets one canned 503 and is
  closed (see `listener`), so a flood of clients cannot grow memory or the accept queue;
- `max_concurrency` predictions in flight: past it a prediction gets the canned 503 on its
  own keep-alive connection, written straight to the socket without an ASGI task.

Both refusals are prebuilt bytes (rebuilt once a second, when the Date header changes): a
refused request costs the server a few microseconds, so refusing does not itself become the
overload. GETs (health checks, metrics, metadata) are never refused for in-flight load: a pod
that fails its readiness probe because it is busy sheds its traffic onto the other replicas
and can make them fail in turn.
"""

from __future__ import annotations

import orjson

RETRY_AFTER_S = 1


class Admission:
    """The in-flight and open-connection counts of one server and its two canned refusals."""

    def __init__(self, max_concurrency: int, max_connections: int):
        self.max_concurrency = max_concurrency
        self.max_connections = max_connections
        self.in_flight = 0  # predictions admitted and not yet answered
        self.connections = 0  # connections accepted and not yet closed
        self.refused_connections = 0  # connections answered with the canned 503, since the start
        self._headers: object = None  # the default-headers list the canned replies were built with
        self._replies: tuple[bytes, bytes, bytes] = (b"", b"", b"")

    def busy(self, default_headers: list[tuple[bytes, bytes]], close: bool = False) -> bytes:
        """The whole 503 for a prediction past `max_concurrency`, keeping the connection or closing it."""
        if default_headers is not self._headers:
            self._build(default_headers)
        return self._replies[1 if close else 0]

    def full(self, default_headers: list[tuple[bytes, bytes]]) -> bytes:
        """The whole 503 for a connection past `max_connections` (then the connection closes)."""
        if default_headers is not self._headers:
            self._build(default_headers)
        return self._replies[2]

    def _build(self, default_headers: list[tuple[bytes, bytes]]) -> None:
        busy = (f"server busy: {self.max_concurrency} predictions already in flight (--max-concurrency); "
                f"retry after {RETRY_AFTER_S} s or add replicas")
        full = (f"server busy: {self.max_connections} connections already open (--max-connections); "
                f"retry after {RETRY_AFTER_S} s or add replicas")
        self._headers = default_headers
        self._replies = (
            _response(busy, default_headers, close=False),
            _response(busy, default_headers, close=True),
            _response(full, default_headers, close=True),
        )


def _response(message: str, default_headers: list[tuple[bytes, bytes]], close: bool) -> bytes:
    body = orjson.dumps({"error": message})
    headers = [
        *default_headers,
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(body)),
        (b"retry-after", b"%d" % RETRY_AFTER_S),
    ]
    if close:
        headers.append((b"connection", b"close"))
    lines = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
    return b"HTTP/1.1 503 Service Unavailable\r\n" + lines + b"\r\n" + body
