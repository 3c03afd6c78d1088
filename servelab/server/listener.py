"""Accepting connections: every waiting one at each turn of the event loop, a bounded number kept.

Why not uvloop's own server: libuv accepts one connection per turn of the event loop, so under
a flood of new connections they wait in the kernel's accept queue for as many turns as there
are connections ahead of them. Measured on the tiny model with 1,000 wrk connections: 899 of
them sat in the queue, each about 1.3 s, and those were the 503s that took seconds.

So the server reads the listening socket itself. Each turn it accepts every connection waiting
(at most `PER_TURN`) and hands it to the event loop as an HTTP connection, or, past
`max_connections`, refuses it: waits for its first bytes (an answer sent before the request
would be read by clients as unsolicited and dropped), writes the canned 503 and closes. Nothing
of the refused request is parsed. A refused connection that sends nothing is closed after the
header timeout. Requests that are not POSTs (a kubelet's probe, a scrape of /metrics) are let
in past the limit, up to `PROBE_ROOM` more connections, so a busy pod still answers its probes.

Refusing is cheap but not free: accepting, answering and closing a connection costs the
server about a third of what serving a tiny prediction does (measured: 37 us of its CPU
against about 100 us), and a client that reconnects the moment it is refused (wrk, most
benchmarks) would turn all of the server's time into refusals. So refusing may take at most
`REFUSING_SHARE` of the server's time; past that, the connections wait in the kernel's accept
queue for a later turn. Under such a flood predictions keep nearly all of the CPU, and a new
client's 503 waits its turn in that queue (`make bench AREAS=overload` measures both).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable

from servelab.server.admission import Admission

PER_TURN = 1024  # connections accepted in one turn at most, so one turn stays short
REFUSING_SHARE = 0.1  # of the server's time, at most, spent refusing connections...
WINDOW_S = 1.0  # ...counted over windows this long
PROBE_ROOM = 32  # connections past max_connections that GET requests may still use
PEEK_BYTES = 8


class Listener:
    """Accepts on `sock` for as long as it runs; `stop()` takes the queue's last ones and closes it."""

    def __init__(
        self,
        sock: socket.socket,
        protocol_factory: Callable[[], asyncio.Protocol],
        admission: Admission,
        refusal: Callable[[], bytes],
        first_bytes_timeout: float,
    ):
        self.sock = sock
        self.protocol_factory = protocol_factory
        self.admission = admission
        self.refusal = refusal
        self.first_bytes_timeout = first_bytes_timeout
        self._waiting: dict[socket.socket, asyncio.TimerHandle] = {}  # refused, before their first bytes
        self._loop: asyncio.AbstractEventLoop | None = None
        self._window_start = time.perf_counter()
        self._refusing_s = 0.0  # time spent refusing since the window started

    def start(self) -> None:
        self.sock.setblocking(False)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.sock, self._accept)

    def stop(self) -> None:
        """Stop accepting: connections already queued in the kernel are still taken, then the socket closes."""
        if self._loop is None:
            return
        self._loop.remove_reader(self.sock)
        self._accept(budget=False)
        self.sock.close()
        for conn in list(self._waiting):
            self._forget(conn)
            conn.close()
        self._loop = None

    def _accept(self, budget: bool = True) -> None:
        for _ in range(PER_TURN):
            full = self.admission.connections >= self.admission.max_connections
            if full and budget and not self._may_refuse():
                return  # the rest wait in the kernel's queue for a later turn
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. out of file descriptors: the connection stays queued for a later turn
                return
            if full:
                start = time.perf_counter()
                self._refuse(conn)
                self._refusing_s += time.perf_counter() - start
            else:
                self._serve(conn)

    def _may_refuse(self) -> bool:
        """Whether refusing has taken less than REFUSING_SHARE of the time in the current window."""
        now = time.perf_counter()
        if now - self._window_start > WINDOW_S:
            self._window_start, self._refusing_s = now, 0.0
        return self._refusing_s <= REFUSING_SHARE * max(now - self._window_start, 0.01)

    def _serve(self, conn: socket.socket) -> None:
        self.admission.connections += 1  # counted now, so a burst in one turn cannot overshoot the limit
        self._loop.create_task(self._hand_over(conn))

    async def _hand_over(self, conn: socket.socket) -> None:
        """The connection becomes an HTTP connection (whose connection_lost uncounts it)."""
        try:
            await self._loop.connect_accepted_socket(self.protocol_factory, conn)
        except OSError:  # gone before the event loop took it
            self.admission.connections -= 1
            conn.close()

    def _refuse(self, conn: socket.socket) -> None:
        conn.setblocking(False)
        try:
            first = conn.recv(PEEK_BYTES, socket.MSG_PEEK)
        except BlockingIOError:
            self._waiting[conn] = self._loop.call_later(self.first_bytes_timeout, self._give_up, conn)
            self._loop.add_reader(conn, self._first_bytes, conn)
            return
        except OSError:
            conn.close()
            return
        self._answer(conn, first)

    def _first_bytes(self, conn: socket.socket) -> None:
        start = time.perf_counter()
        self._forget(conn)
        try:
            first = conn.recv(PEEK_BYTES, socket.MSG_PEEK)
        except OSError:
            conn.close()
        else:
            self._answer(conn, first)
        self._refusing_s += time.perf_counter() - start

    def _answer(self, conn: socket.socket, first: bytes) -> None:
        if first and not first.startswith(b"POST") and self.admission.connections < self.admission.max_connections + PROBE_ROOM:
            self._serve(conn)
            return
        try:
            conn.recv(65536)  # what has arrived is read, so closing sends FIN rather than a reset
            if first:
                conn.send(self.refusal())
                self.admission.refused_connections += 1
        except OSError:
            pass
        conn.close()

    def _give_up(self, conn: socket.socket) -> None:
        self._forget(conn)
        conn.close()

    def _forget(self, conn: socket.socket) -> None:
        timer = self._waiting.pop(conn, None)
        if timer is not None:
            timer.cancel()
            self._loop.remove_reader(conn)
