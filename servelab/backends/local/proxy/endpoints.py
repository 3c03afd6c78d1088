"""The Ready endpoints of one Service, the round-robin turn, and idle kept-alive connections per pod.

Idle connections are kept per endpoint so a request can be written to a pod at once instead of
waiting for a connect; a connection handed to a client is checked against its endpoint's Ready
flag before use, so a pod that left the Service gets nothing even through a connection a client
already holds.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

Endpoint = tuple[str, int]


class Ready:
    """Whether an endpoint is still behind the Service: connections to it share one of these."""

    __slots__ = ("ready",)

    def __init__(self, ready: bool) -> None:
        self.ready = ready


GONE = Ready(False)


class Idle(Protocol):
    """What the pool needs of a pod connection."""

    endpoint: Endpoint
    ready: Ready
    closed: bool
    transport: asyncio.BaseTransport


class Endpoints:
    def __init__(self) -> None:
        self.ready: list[Endpoint] = []
        self.flags: dict[Endpoint, Ready] = {}
        self.idle: dict[Endpoint, list[Idle]] = {}
        self.turn = -1

    def update(self, endpoints: list[Endpoint]) -> list[Endpoint]:
        """Route only to `endpoints` from now on; return the ones that are new."""
        new = [e for e in endpoints if e not in self.ready]
        self.ready = endpoints
        for gone in set(self.flags) - set(endpoints):
            self.flags.pop(gone).ready = False  # connections held by clients see it before sending
        for endpoint in new:
            self.flags[endpoint] = Ready(True)
        for gone in set(self.idle) - set(endpoints):
            for connection in self.idle.pop(gone):
                connection.transport.close()
        return new

    def flag(self, endpoint: Endpoint) -> Ready:
        return self.flags.get(endpoint, GONE)

    def pick(self) -> int:
        """The index of the next endpoint in round-robin order."""
        self.turn += 1
        return self.turn % len(self.ready) if self.ready else 0

    def take(self) -> Idle | None:
        """An idle connection to the next endpoint in turn, or None (then the turn is not used up)."""
        if not self.ready:
            return None
        pool = self.idle.get(self.ready[self.pick()])
        while pool:
            connection = pool.pop()
            if not connection.closed:
                return connection
        self.turn -= 1  # none idle: the request that comes will connect to this endpoint
        return None

    def order(self, start: int) -> list[Endpoint]:
        """All endpoints from index `start` on, then the others (fallbacks if it refuses)."""
        return self.ready[start:] + self.ready[:start]

    def release(self, connection: Idle) -> None:
        """Keep an idle connection for a later request, or close it if its pod left or closed it."""
        if connection.ready.ready and not connection.closed:
            self.idle.setdefault(connection.endpoint, []).append(connection)
        else:
            connection.transport.close()
