"""Helpers for the Service proxy tests: raw pods that answer in every framing, and the real proxy.

The pods are raw asyncio servers, so what the proxy passes on can be checked byte for byte; the
proxy is the real process, started as LocalCluster starts it.
"""

from __future__ import annotations

import asyncio

import pytest

from servelab.backends.local.proxy.round_trip import RoundTrip
from servelab.backends.local.service_proxy import ServiceProxy

RESPONSES = {
    b"/length": b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello",
    b"/chunked": b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=1\r\nde\r\n0\r\nT: 1\r\n\r\n",
    b"/empty": b"HTTP/1.1 204 No Content\r\n\r\n",
}
UPGRADED = b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n"


async def _body(reader: asyncio.StreamReader, head: bytes) -> bytes:
    """The request body, by Content-Length or (decoded) chunked."""
    lines = [line.lower() for line in head.split(b"\r\n")]
    if b"transfer-encoding: chunked" in lines:
        body = b""
        while size := int((await reader.readline()).split(b";")[0], 16):
            body += (await reader.readexactly(size + 2))[:-2]
        while await reader.readline() != b"\r\n":  # trailers
            pass
        return body
    length = next((int(line.split(b":")[1]) for line in lines if line.startswith(b"content-length")), 0)
    return await reader.readexactly(length)


async def _answer(path: bytes, method: bytes, body: bytes, name: bytes, writer: asyncio.StreamWriter) -> bool:
    """Write the answer for `path`; False: the connection ends here."""
    if path == b"/die":
        return False
    if path == b"/once":  # answers, then closes the kept-alive connection unannounced (idle timeout)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\nx-pod: %s\r\n\r\nonce" % name)
        await writer.drain()
        return False
    if path == b"/close":
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil-close-" + name)
        return False
    if path == b"/echo":
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\nx-pod: %s\r\n\r\n%s" % (len(body), name, body))
    else:
        response = RESPONSES[path]
        writer.write(response.split(b"\r\n\r\n")[0] + b"\r\n\r\n" if method == b"HEAD" else response)
    await writer.drain()
    return True


async def pod(name: str):
    """A pod answering by path; '/close' answers without a length and closes; '/die' just closes;
    '/upgrade' switches to echoing raw bytes back."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            if b"\r\nexpect: 100-continue" in head.lower():  # as servers do; the client must see one only
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            body = await _body(reader, head)
            method, path = head.split(b" ")[:2]
            if path == b"/upgrade":
                writer.write(UPGRADED)
                while data := await reader.read(65536):
                    writer.write(data)
                break
            if not await _answer(path, method, body, name.encode(), writer) or b"\r\nconnection: close" in head.lower():
                break
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, ("127.0.0.1", server.sockets[0].getsockname()[1])


async def started(endpoints, mode: str = "per-request", round_trip: RoundTrip = RoundTrip()) -> ServiceProxy:
    """The real proxy process, routing to `endpoints`."""
    proxy = ServiceProxy("svc", 0, mode, round_trip)
    await proxy.start()
    await proxy.set_endpoints(endpoints)
    return proxy


async def exchange(port: int, raw: bytes, read_until_close: bool = False) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    data = await (reader.read() if read_until_close else reader.read(65536))
    writer.close()
    return data


@pytest.fixture
def run():
    loop = asyncio.new_event_loop()
    yield loop.run_until_complete
    loop.close()
