"""Holding bytes back on their way, as a longer network path would.

A Service with an added round trip R +- J wraps both sides of every connection through it: each
write to a pod (the request's way) and each write to a client (the answer's way) is held for
R/2 plus a jitter drawn uniformly from [-J/2, +J/2] (`random.Random` seeded with the Service's
name, one generator per proxy). Half on each way, because that is where a network puts it: the
pod gets the request half a round trip after the client sent it, so it works at the moment it
would behind a real path, and jitter reshapes the arrivals it sees, as a real path does. One
draw per burst: bytes written while earlier ones are still held take the same delay, so a
message split over several writes arrives whole and in order, and a request and its answer take
exactly R +- J more (the sum of two draws: triangular, around R). Only requests are delayed, not
a connection's set-up (its TCP handshake would cost one more round trip on a real path; clients
here keep their connections alive).

The event loop's timers count whole milliseconds, so a held write is checked against
time.monotonic() before it goes: it never leaves early, and leaves up to about 1 ms late.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque

from servelab.backends.local.proxy.round_trip import RoundTrip


class Delay:
    """One Service's half round trips, drawn from one seeded generator."""

    def __init__(self, round_trip: RoundTrip, seed: str) -> None:
        self.half_s = round_trip.ms / 2000
        self.spread_s = round_trip.jitter_ms / 2000
        self.random = random.Random(seed)
        self.loop = asyncio.get_running_loop()

    def draw(self) -> float:
        """Seconds to hold one write: half the round trip, give or take half the jitter, uniformly."""
        return self.half_s + self.random.uniform(-self.spread_s, self.spread_s)

    def wrap(self, transport: asyncio.Transport) -> DelayedTransport:
        return DelayedTransport(transport, self)


class DelayedTransport:
    """A transport whose writes leave a drawn delay later, in the order they were written."""

    def __init__(self, transport: asyncio.Transport, delay: Delay) -> None:
        self.transport, self.delay = transport, delay
        self.held: deque[tuple[float, bytes]] = deque()
        self.hold_s = 0.0  # the current burst's delay
        self.timer: asyncio.TimerHandle | None = None
        self.closing = False

    def write(self, data: bytes | bytearray) -> None:
        if not self.held:  # a new burst: a new draw
            self.hold_s = self.delay.draw()
        due = time.monotonic() + self.hold_s
        self.held.append((due, bytes(data)))  # a copy of a bytearray: the writer may go on changing it
        if self.timer is None:
            self._arm(due)

    def _arm(self, due: float) -> None:
        self.timer = self.delay.loop.call_later(max(0.0, due - time.monotonic()), self._flush)

    def _flush(self) -> None:
        self.timer = None
        if self.transport.is_closing():  # the other end went away meanwhile: nothing can be delivered
            self.held.clear()
            return
        now = time.monotonic()
        while self.held and self.held[0][0] <= now:
            self.transport.write(self.held.popleft()[1])
        if self.held:
            self._arm(self.held[0][0])
        elif self.closing:
            self.transport.close()

    def close(self) -> None:
        """Close once the held bytes have left, as a FIN follows the data on the wire."""
        self.closing = True
        if not self.held:
            self.transport.close()

    def abort(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.held.clear()
        self.transport.abort()

    def is_closing(self) -> bool:
        return self.closing or self.transport.is_closing()

    def __getattr__(self, name: str):
        return getattr(self.transport, name)  # pause_reading, get_extra_info, ...: the real transport's
