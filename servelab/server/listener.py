"""Accepting connections: at each turn of the event loop and between requests, a bounded number kept.

Why not uvloop's own server: libuv accepts one connection per turn of the event loop, so under
a flood of new connections they wait in the kernel's accept queue for as many turns as there
are connections ahead of them. Measured on the tiny model with 1,000 wrk connections: 899 of
them sat in the queue, each about 1.3 s, and those were the 503s that took seconds.

So the server reads the listening socket itself. Each look it accepts every connection waiting
(at most `PER_TURN`) and hands it to the event loop as an HTTP connection, or, past
`max_connections`, refuses it: waits for its first bytes (an answer sent before the request
would be read by clients as unsolicited and dropped), writes the canned 503 and closes. Nothing
of the refused request is parsed. A refused connection that sends nothing is closed after the
header timeout. Requests that are not POSTs (a kubelet's probe, a scrape of /metrics) are let
in past the limit, up to `PROBE_ROOM` more connections, so a busy pod still answers its probes.

Why it also looks between requests: one turn of a busy loop serves every request that arrived
meanwhile (about 100 on the tiny model, ~10 ms), so a connection looked at once per turn, and a
refused one whose first bytes came after its accept, waited a turn or two: a new client's 503
took 8.5 ms at the median and 67 ms at p99 with the server just at its limit. So after every
response the connection calls `between_requests`, which looks again once `LOOK_EVERY_S` has
passed (a look that finds nothing costs a few microseconds): measured the same way, 1.4 ms
and 11 ms. What was left of that p99 was the interpreter's full garbage collections (20-30 ms,
about once a second under this load), during which nothing is looked at; `run.serve` freezes
what the server loaded at start out of them, and the p99 fell to 1.5-3 ms.

Refusing is cheap but not free: accepting, answering and closing a connection costs the
server about a third of what serving a tiny prediction does (measured: 37 us of its CPU
against about 100 us), and a client that reconnects the moment it is refused (wrk, most
benchmarks) would turn all of the server's time into refusals. So refusing, counted from the
accept, may take at most `REFUSING_SHARE` of the server's time; past that, the connections
wait in the kernel's accept queue for a later look. (Counted from after the accept, as it once
was, refusing took 17% with 1,000 wrk connections, and looking between requests cost 5% of
goodput.) Under such a flood predictions keep nearly all of the CPU, and a new
client's 503 waits its turn in that queue (`make bench AREAS=overload` measures both).
"""

from __future__ import annotations

import asyncio
import selectors
import socket
import time
from collections.abc import Callable

from servelab.server.admission import Admission

PER_TURN = 1024  # connections accepted in one look at most, so one look stays short
LOOK_EVERY_S = 0.001  # while requests are being served, a look between two of them this often at most
REFUSING_SHARE = 0.1  # of the server's time, at most, spent refusing connections...
WINDOW_S = 1.0  # ...counted over windows this long
PROBE_ROOM = 32  # connections past max_connections that GET requests may still use
PEEK_BYTES = 8


class Listener:
    """Accepts on `sock` from `start()` on; `stop()` takes the queue's last ones and closes it.

    Its sockets (the listening one, and the refused ones until their first bytes) are in a
    selector of its own, which the event loop watches, so one look (`_look`) asks the kernel
    once which of them are ready, however many refused connections sit idle.
    """

    def __init__(
        self,
        sock: socket.socket,
        admission: Admission,
        refusal: Callable[[], bytes],
        first_bytes_timeout: float,
    ):
        self.sock = sock
        self.admission = admission
        self.refusal = refusal
        self.first_bytes_timeout = first_bytes_timeout
        self.protocol_factory: Callable[[], asyncio.Protocol] | None = None
        self._selector = selectors.DefaultSelector()
        self._waiting: dict[socket.socket, asyncio.TimerHandle] = {}  # refused, before their first bytes
        self._loop: asyncio.AbstractEventLoop | None = None
        self._looked_at = 0.0
        self._window_start = time.perf_counter()
        self._refusing_s = 0.0  # time spent refusing since the window started

    def start(self, protocol_factory: Callable[[], asyncio.Protocol]) -> None:
        self.protocol_factory = protocol_factory
        self.sock.setblocking(False)
        self._loop = asyncio.get_running_loop()
        self._selector.register(self.sock, selectors.EVENT_READ)
        self._loop.add_reader(self._selector.fileno(), self._look)

    def between_requests(self) -> None:
        """Called after every response: a look, if LOOK_EVERY_S has passed since the last one."""
        if self._loop is not None and time.perf_counter() - self._looked_at >= LOOK_EVERY_S:
            self._look()

    def stop(self) -> None:
        """Stop accepting: connections already queued in the kernel are still taken, then the socket closes."""
        if self._loop is None:
            return
        self._loop.remove_reader(self._selector.fileno())
        self._accept(budget=False)
        for conn in list(self._waiting):
            self._forget(conn)
            conn.close()
        self._selector.close()
        self.sock.close()
        self._loop = None

    def _look(self) -> None:
        """New connections accepted (or refused), and refused ones whose first bytes came answered."""
        self._looked_at = time.perf_counter()
        for key, _ in self._selector.select(0):
            if key.fileobj is self.sock:
                self._accept()
            else:
                self._first_bytes(key.fileobj)

    def _accept(self, budget: bool = True) -> None:
        for _ in range(PER_TURN):
            full = self.admission.connections >= self.admission.max_connections
            if full and budget and not self._may_refuse():
                return  # the rest wait in the kernel's queue for a later look
            start = time.perf_counter()  # a refusal's time counts from its accept
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. out of file descriptors: the connection stays queued for a later look
                return
            if full:
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
        self.admission.connections += 1  # counted now, so a burst in one look cannot overshoot the limit
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
            self._selector.register(conn, selectors.EVENT_READ)
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
            self._selector.unregister(conn)
