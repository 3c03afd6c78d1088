"""A pod's readiness and liveness probe: one GET with the load generator's client, counted as the
kubelet counts it (a 2xx or 3xx answer within the timeout; anything else is a failure)."""

from __future__ import annotations

import asyncio
import socket
import time

from servelab.backends.local.pods import http_ok

ANSWERS = {
    b"/ready": b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
    b"/moved": b"HTTP/1.1 302 Found\r\nlocation: /ready\r\ncontent-length: 0\r\n\r\n",
    b"/starting": b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 2\r\n\r\nno",
    b"/garbage": b"SSH-2.0-OpenSSH_9.2\r\n\r\n",
}


def test_the_probe_counts_2xx_and_3xx_within_the_timeout_and_nothing_else(run):
    heads = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        heads.append(head)
        path = head.split(b" ")[1]
        if path == b"/silent":
            await reader.read()  # never answers; returns when the probe gives up and closes
        else:
            writer.write(ANSWERS[path])
            await writer.drain()
        writer.close()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        with socket.socket() as unused:  # a port nobody listens on: a pod not started yet
            unused.bind(("127.0.0.1", 0))
            closed_port = unused.getsockname()[1]
        try:
            results = {path.decode(): await http_ok(port, path.decode(), 1.0) for path in ANSWERS}
            started_s = time.monotonic()
            results["/silent"] = await http_ok(port, "/silent", 0.3)
            waited_s = time.monotonic() - started_s
            results["refused"] = await http_ok(closed_port, "/ready", 1.0)
            return results, waited_s
        finally:
            server.close()

    results, waited_s = run(main())
    assert results == {"/ready": True, "/moved": True, "/starting": False, "/garbage": False,
                       "/silent": False, "refused": False}
    assert 0.25 <= waited_s < 3  # gave up at its timeout (checked every tenth of it), bounded widely
    assert all(h.startswith(b"GET /") and b"\r\nConnection: close\r\n" in h for h in heads)
