"""The Service proxy forwards HTTP/1.1 faithfully and fails over only where nothing was sent.

The pods (proxy_fixtures.py) are raw asyncio servers answering in each framing a server may use
(length, chunked, close-delimited, HEAD, 100 Continue, an upgrade), so the proxy's message
boundaries are checked exactly; the proxy is the real process, started as LocalCluster starts it.
"""

from __future__ import annotations

import asyncio

import pytest
from proxy_fixtures import RESPONSES, UPGRADED, exchange, pod, started

from servelab.backends.local.proxy.round_trip import RoundTrip
from servelab.backends.local.service_proxy import PortInUseError, ServiceProxy


async def exactly(port: int, raw: bytes, n: int) -> bytes:
    """Send `raw` on a new connection and read `n` bytes back (a delayed answer may come in pieces)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    try:
        return await asyncio.wait_for(reader.readexactly(n), 5)
    finally:
        writer.close()


# Every framing, through each balancing mode, and through a Service that holds bytes back
# (an added round trip with jitter: writes are queued and must leave whole and in order).
SETUPS = [("per-request", RoundTrip()), ("per-request", RoundTrip(10, 10)), ("per-connection", RoundTrip(10, 10))]


@pytest.mark.parametrize("mode, round_trip", SETUPS)
def test_framings_pass_through_unchanged(run, mode, round_trip):
    async def main():
        server, endpoint = await pod("a")
        proxy = await started([endpoint], mode, round_trip)
        try:
            results = {}
            for path, expected in RESPONSES.items():
                raw = b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path
                results[path] = (await exactly(proxy.port, raw, len(expected)), expected)
            head = await exchange(proxy.port, b"HEAD /length HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", True)
            closed = await exchange(proxy.port, b"GET /close HTTP/1.1\r\nHost: x\r\n\r\n", True)
            body = b'{"instances": [1.0, 2.0, 5.0]}'
            continued = await exchange(proxy.port, b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                                       b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body), True)
            return results, head, closed, continued, body
        finally:
            await proxy.stop()
            server.close()

    results, head, closed, continued, body = run(main())
    for got, expected in results.values():
        assert got == expected
    assert head == b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"
    assert closed.endswith(b"\r\n\r\nuntil-close-a")
    assert continued.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK") and continued.endswith(body)
    assert continued.count(b"100 Continue") == 1


@pytest.mark.parametrize("round_trip", [RoundTrip(), RoundTrip(10, 10)])
def test_one_connection_carries_head_continue_and_chunked_requests(run, round_trip):
    """A HEAD answer ends with its head (the next answer on that pod connection is read right), a
    client that waits for 100 Continue gets it before it sends the body, and a chunked request is
    passed on whole, all on one kept-alive client connection."""

    async def main():
        server, endpoint = await pod("a")
        proxy = await started([endpoint], round_trip=round_trip)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            answers = []
            for _ in range(2):
                writer.write(b"HEAD /length HTTP/1.1\r\n\r\n")
                answers.append(await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5))
                writer.write(b"GET /length HTTP/1.1\r\n\r\n")
                answers.append(await asyncio.wait_for(reader.readexactly(len(RESPONSES[b"/length"])), 5))
            writer.write(b"POST /echo HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
            answers.append(await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5))
            writer.write(b"body")
            answers.append(await asyncio.wait_for(reader.readuntil(b"body"), 5))
            writer.write(b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
            await writer.drain()
            await asyncio.sleep(0.02)
            writer.write(b"2\r\nde\r\n0\r\n\r\n")
            answers.append(await asyncio.wait_for(reader.readuntil(b"abcde"), 5))
            writer.close()
            return answers
        finally:
            await proxy.stop()
            server.close()

    head_1, get_1, head_2, get_2, continue_, echoed, chunked = run(main())
    assert head_1 == head_2 == b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"
    assert get_1 == get_2 == RESPONSES[b"/length"]
    assert continue_ == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert echoed.startswith(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n")
    assert chunked.startswith(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n")


def test_unreadable_requests_get_a_clear_error_and_an_upgrade_is_passed_through(run):
    async def main():
        server, endpoint = await pod("a")
        proxy = await started([endpoint])
        try:
            garbage = await exchange(proxy.port, b"NOT HTTP AT ALL\r\n\r\n", True)
            endless = await exchange(proxy.port, b"GET / HTTP/1.1\r\nX-Long: " + b"x" * (80 * 1024), True)
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            writer.write(b"GET /upgrade HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\nfirst ")
            switched = await asyncio.wait_for(reader.readuntil(b"first "), 5)
            writer.write(b"second")
            echoed = await asyncio.wait_for(reader.readuntil(b"second"), 5)
            writer.close()
            return garbage, endless, switched, echoed
        finally:
            await proxy.stop()
            server.close()

    garbage, endless, switched, echoed = run(main())
    assert garbage.startswith(b"HTTP/1.1 400 Bad Request") and b'"error": "malformed HTTP request' in garbage
    assert endless.startswith(b"HTTP/1.1 431 Request Header Fields Too Large") and b"over 64 KiB" in endless
    assert switched == UPGRADED + b"first " and echoed == b"second"


def test_round_robin_failover_and_no_pods(run):
    async def main():
        (server_a, a), (server_b, b) = await pod("a"), await pod("b")
        proxy = await started([a, b])
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            seen = []
            for _ in range(4):  # one kept-alive client connection, spread over both pods
                writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
                seen.append((await reader.readuntil(b"\r\n\r\nhi")).split(b"x-pod: ")[1][:1])
            writer.close()
            await proxy.set_endpoints([a])  # the proxy drops its kept-alive connections to b
            server_b.close()
            await server_b.wait_closed()
            # A listed endpoint that refuses connections (a pod that just died) is skipped.
            await proxy.set_endpoints([a, b])
            after = [await exchange(proxy.port, b"POST /echo HTTP/1.1\r\nContent-Length: 2\r\n\r\nok") for _ in range(4)]
            died = await exchange(proxy.port, b"GET /die HTTP/1.1\r\nHost: x\r\n\r\n")
            await proxy.set_endpoints([])
            none = await exchange(proxy.port, b"GET /length HTTP/1.1\r\nHost: x\r\n\r\n")
            return seen, after, died, none
        finally:
            await proxy.stop()
            server_a.close()

    seen, after, died, none = run(main())
    assert seen == [b"a", b"b", b"a", b"b"] or seen == [b"b", b"a", b"b", b"a"]
    assert all(r.startswith(b"HTTP/1.1 200") and b"x-pod: a" in r for r in after)
    assert died.startswith(b"HTTP/1.1 502 Bad Gateway")
    assert none.startswith(b"HTTP/1.1 503 Service Unavailable") and b"no Ready pod behind service svc" in none


def test_split_and_pipelined_requests_and_a_ready_connection(run):
    """A request in pieces waits for its end; two in one write go out one at a time, in order;
    a pod gets its first connection when it joins, before any request."""

    async def main():
        connected = asyncio.Event()
        server, endpoint = await pod("a")
        server_b = await asyncio.start_server(lambda r, w: connected.set(), "127.0.0.1", 0)
        proxy = await started([endpoint])
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            writer.write(b"POST /echo HTTP/1.1\r\nContent-Le")
            await writer.drain()
            await asyncio.sleep(0.05)  # let the proxy read the first piece on its own
            writer.write(b"ngth: 3\r\n\r\none")
            first = await reader.readuntil(b"one")
            writer.write(b"POST /echo HTTP/1.1\r\nContent-Length: 3\r\n\r\ntwoPOST /echo HTTP/1.1\r\n"
                         b"Content-Length: 5\r\n\r\nthree")
            pipelined = await reader.readuntil(b"three")
            writer.close()
            await proxy.set_endpoints([endpoint, ("127.0.0.1", server_b.sockets[0].getsockname()[1])])
            await asyncio.wait_for(connected.wait(), 5)
            return first, pipelined
        finally:
            await proxy.stop()
            server.close()
            server_b.close()

    first, pipelined = run(main())
    assert first.startswith(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n") and first.endswith(b"\r\n\r\none")
    assert pipelined.count(b"HTTP/1.1 200 OK") == 2 and pipelined.index(b"two") < pipelined.index(b"three")


def test_a_held_connection_is_checked_before_sending(run):
    """The proxy holds a pod connection for a client's next request: if that pod left the Service
    meanwhile the request goes to a Ready one, and if the pod closed the connection the request
    is sent on a fresh one."""

    async def main():
        (server_a, a), (server_b, b) = await pod("a"), await pod("b")
        proxy = await started([a])
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            writer.write(b"POST /echo HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi")
            first = await reader.readuntil(b"\r\n\r\nhi")  # a connection to a is held for the next one
            await proxy.set_endpoints([b])
            writer.write(b"POST /echo HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi")
            moved = await reader.readuntil(b"\r\n\r\nhi")
            stale = []
            for _ in range(4):  # b closes each connection after one answer: the next held one is stale
                writer.write(b"GET /once HTTP/1.1\r\n\r\n")
                stale.append(await asyncio.wait_for(reader.readuntil(b"once"), 5))
                await asyncio.sleep(0.02)  # sometimes the close is seen before the next request
            writer.close()
            return first, moved, stale
        finally:
            await proxy.stop()
            server_a.close()
            server_b.close()

    first, moved, stale = run(main())
    assert b"x-pod: a" in first and b"x-pod: b" in moved
    assert all(r.startswith(b"HTTP/1.1 200 OK") and b"x-pod: b" in r for r in stale)


def test_pipelined_first_read_is_pinned_and_ordered(run):
    """Requests pipelined in the very first read all reach the held pod, answered in order,
    and later requests on that connection still pass (the connection is forwarded as bytes)."""

    async def main():
        server, endpoint = await pod("a")
        proxy = await started([endpoint])
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            writer.write(b"GET /chunked HTTP/1.1\r\n\r\nPOST /echo HTTP/1.1\r\nContent-Length: 3\r\n\r\ntwoPOST /ec")
            await writer.drain()
            await asyncio.sleep(0.02)
            writer.write(b"ho HTTP/1.1\r\nContent-Length: 5\r\n\r\nthree")
            pipelined = await asyncio.wait_for(reader.readuntil(b"three"), 5)
            writer.write(b"HEAD /length HTTP/1.1\r\n\r\n")
            last = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            writer.close()
            return pipelined, last
        finally:
            await proxy.stop()
            server.close()

    pipelined, last = run(main())
    assert pipelined.startswith(RESPONSES[b"/chunked"])
    assert pipelined.count(b"HTTP/1.1 200 OK") == 3 and pipelined.index(b"two") < pipelined.index(b"three")
    assert last == b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"


def test_port_in_use_is_reported_with_the_port(run):
    async def main():
        holder = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = holder.sockets[0].getsockname()[1]
        try:
            await ServiceProxy("svc", port, "per-request").start()
        finally:
            holder.close()

    with pytest.raises(PortInUseError, match="port \\d+ is already in use by pid"):
        run(main())
