"""The Service: one stable address that spreads requests over the Ready pods behind it.

It runs as its own process (`python -m servelab.backends.local.proxy`) on uvloop when available,
so its event loop never competes with a Jupyter kernel's GIL. The owner sends the list of Ready
endpoints as JSON lines on stdin and waits for "ok" on stdout before it terminates a removed
pod; when stdin closes (the owner exited or was killed) the proxy exits too.

Two ways to balance, chosen per Service:
- "per-request" (default): HTTP-aware; every request goes to the next Ready pod in round-robin
  order, over kept-alive connections to the pods. Like an L7 proxy (Envoy, an ingress).
- "per-connection": plain TCP; each client connection is pinned to one pod for its whole life.
  Like kube-proxy: a client that keeps one connection open talks to one pod only.
A connection a pod refuses (it just died) is retried on the next pod before anything was sent;
a request already sent to a pod that dies fails with 502, as it would on a real cluster.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys

MODES = ("per-request", "per-connection")
_BODYLESS = (b"HEAD",)


class Backends:
    """The Ready endpoints, a round-robin cursor, and idle kept-alive connections per endpoint."""

    def __init__(self) -> None:
        self.endpoints: list[tuple[str, int]] = []
        self.idle: dict[tuple[str, int], list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]] = {}
        self._cursor = itertools.count()

    def update(self, endpoints: list[tuple[str, int]]) -> None:
        self.endpoints = endpoints
        for gone in set(self.idle) - set(endpoints):
            for _, writer in self.idle.pop(gone):
                writer.close()

    def order(self) -> list[tuple[str, int]]:
        """All endpoints, starting at the next one in round-robin order (the rest are fallbacks)."""
        eps = self.endpoints
        if not eps:
            return []
        start = next(self._cursor) % len(eps)
        return eps[start:] + eps[:start]

    async def connect(self, endpoint: tuple[str, int], reuse: bool = True):
        """A kept-alive connection to `endpoint` if one is idle, else a new one; and whether reused."""
        pool = self.idle.get(endpoint)
        while reuse and pool:
            reader, writer = pool.pop()
            if not reader.at_eof() and not writer.is_closing():
                return reader, writer, True
            writer.close()
        reader, writer = await asyncio.open_connection(*endpoint)
        return reader, writer, False

    def release(self, endpoint: tuple[str, int], reader, writer) -> None:
        if endpoint in self.endpoints and not reader.at_eof():
            self.idle.setdefault(endpoint, []).append((reader, writer))
        else:
            writer.close()


def _headers(head: bytes) -> dict[bytes, bytes]:
    """Lower-cased header names -> values (the few we need; repeated headers: last one wins)."""
    found = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        found[name.strip().lower()] = value.strip()
    return found


async def _read_body(reader: asyncio.StreamReader, headers: dict[bytes, bytes]) -> bytes | None:
    """The message body as framed by Content-Length or chunked encoding; None = until close."""
    if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
        parts = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            parts.append(size_line)
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                while True:  # trailers, then the empty line
                    line = await reader.readuntil(b"\r\n")
                    parts.append(line)
                    if line == b"\r\n":
                        return b"".join(parts)
            parts.append(await reader.readexactly(size + 2))
    length = headers.get(b"content-length")
    if length is not None:
        return await reader.readexactly(int(length))
    return None


def _error(status: str, message: str) -> bytes:
    body = json.dumps({"error": message}).encode()
    return (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
        f"x-servelab-proxy: service\r\n\r\n"
    ).encode() + body


class Proxy:
    def __init__(self, name: str, mode: str) -> None:
        self.name, self.mode = name, mode
        self.backends = Backends()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if self.mode == "per-connection":
                await self._tcp(reader, writer)
            else:
                while await self._one_request(reader, writer):
                    pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()

    async def _tcp(self, reader, writer) -> None:
        for endpoint in self.backends.order():
            try:
                up_reader, up_writer = await asyncio.open_connection(*endpoint)
            except OSError:
                continue
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            return

    async def _one_request(self, reader, writer) -> bool:
        """Forward one request and its response; False when the client connection is done."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False
        headers = _headers(head)
        if headers.get(b"expect", b"").lower() == b"100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            head = b"\r\n".join(l for l in head.split(b"\r\n") if not l.lower().startswith(b"expect:"))
        body = await _read_body(reader, headers) or b""
        request = head + body
        method = head.split(b" ", 1)[0]
        response, keep = await self._exchange(request, method)
        writer.write(response)
        await writer.drain()
        return keep and headers.get(b"connection", b"").lower() != b"close"

    async def _exchange(self, request: bytes, method: bytes) -> tuple[bytes, bool]:
        """Send `request` to the next pod; retry elsewhere only if no pod saw it (refused/stale)."""
        for endpoint in self.backends.order():
            for reuse in (True, False):
                try:
                    up_reader, up_writer, reused = await self.backends.connect(endpoint, reuse)
                except OSError:
                    break  # refused: this pod is gone or not listening; try the next one
                try:
                    up_writer.write(request)
                    head = await up_reader.readuntil(b"\r\n\r\n")
                except (ConnectionError, asyncio.IncompleteReadError) as error:
                    up_writer.close()
                    if reused and not getattr(error, "partial", b""):
                        continue  # a stale kept-alive connection: the pod closed it, try a fresh one
                    return _error("502 Bad Gateway", f"pod {endpoint[0]}:{endpoint[1]} failed: {error!r}"), True
                return await self._finish(endpoint, head, method, up_reader, up_writer)
        return _error("503 Service Unavailable", f"no Ready pod behind service {self.name}"), True

    async def _finish(self, endpoint, head: bytes, method: bytes, up_reader, up_writer) -> tuple[bytes, bool]:
        headers = _headers(head)
        status = int(head.split(b" ", 2)[1])
        if method in _BODYLESS or status in (204, 304) or 100 <= status < 200:
            body: bytes | None = b""
        else:
            body = await _read_body(up_reader, headers)
        if body is None:  # delimited by close: read it all, and close the client side too
            body = await up_reader.read()
            up_writer.close()
            return head + body, False
        if headers.get(b"connection", b"").lower() == b"close":
            up_writer.close()
        else:
            self.backends.release(endpoint, up_reader, up_writer)
        return head + body, True

    async def control(self) -> None:
        """Read endpoint lists from stdin, answer "ok N"; exit when stdin closes (owner gone)."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            message = json.loads(line)
            self.backends.update([(host, int(port)) for host, port in message["endpoints"]])
            print(f"ok {message['seq']}", flush=True)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def serve(name: str, host: str, port: int, mode: str) -> None:
    proxy = Proxy(name, mode)
    server = await asyncio.start_server(proxy.handle, host, port, backlog=1024, reuse_address=True)
    bound = server.sockets[0].getsockname()[1]
    print(f"listening {bound}", flush=True)
    async with server:
        await proxy.control()


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
