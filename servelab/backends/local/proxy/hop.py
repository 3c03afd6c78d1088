"""What every connection through one Service shares: its name, endpoints, added round trip, connects."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine

from servelab.backends.local.proxy.delay import Delay
from servelab.backends.local.proxy.endpoints import Endpoint, Endpoints
from servelab.backends.local.proxy.round_trip import RoundTrip


class Hop:
    def __init__(self, name: str, round_trip: RoundTrip) -> None:
        self.name = name
        self.endpoints = Endpoints()
        self.loop = asyncio.get_running_loop()
        self.delay = Delay(round_trip, seed=name) if round_trip.ms else None
        self._tasks: set[asyncio.Task] = set()  # connects in progress (the loop keeps only weak references)

    def wrap(self, transport: asyncio.Transport) -> asyncio.Transport:
        """The transport itself, or (with an added round trip) one that holds each write back."""
        return transport if self.delay is None else self.delay.wrap(transport)

    def spawn(self, coroutine: Coroutine) -> None:
        task = self.loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def open(self, endpoint: Endpoint, protocol: Callable[[], asyncio.Protocol]) -> asyncio.Protocol | None:
        """A new connection to `endpoint`, or None if it refuses (that pod just died or is not listening yet)."""
        try:
            _, connection = await self.loop.create_connection(protocol, *endpoint)
        except OSError:
            return None
        return connection
