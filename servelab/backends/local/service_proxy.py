"""The owner's handle on a Service proxy process (see proxy/__init__.py for what the proxy does)."""

from __future__ import annotations

import asyncio
import json
import sys

from servelab.backends.local.proxy.round_trip import RoundTrip
from servelab.core.processes import port_holder, spawn


class PortInUseError(OSError):
    """The Service's port is taken; the message names the port and the process holding it."""


class ServiceProxy:
    def __init__(self, name: str, port: int, mode: str, round_trip: RoundTrip = RoundTrip()) -> None:
        self.name, self.requested_port, self.mode, self.round_trip = name, port, mode, round_trip
        self.port = port
        self.endpoints: list[tuple[str, int]] = []
        self.process: asyncio.subprocess.Process | None = None
        self._seq = 0
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        self.process = await spawn(
            [sys.executable, "-m", "servelab.backends.local.proxy", "--name", self.name,
             "--port", str(self.requested_port), "--mode", self.mode, *self.round_trip.argv()],
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )
        first = (await asyncio.wait_for(self.process.stdout.readline(), 30)).decode().strip()
        if not first.startswith("listening "):
            await self.process.wait()
            if "in use" in first:
                holder = port_holder(self.requested_port)
                raise PortInUseError(
                    f"service {self.name}: port {self.requested_port} is already in use"
                    f"{' by ' + holder if holder else ''}. Stop that process, close the cluster that holds "
                    f"it (cluster.close()), or pass service_port=<another port> to connect()."
                )
            raise OSError(f"service {self.name}: the proxy did not start: {first or 'no output'}")
        self.port = int(first.split()[1])

    async def set_endpoints(self, endpoints: list[tuple[str, int]]) -> None:
        """Replace the Ready endpoints and wait until the proxy confirms it routes only to these."""
        async with self._lock:
            if endpoints == self.endpoints or self.process is None or self.process.returncode is not None:
                return
            self._seq += 1
            line = json.dumps({"seq": self._seq, "endpoints": endpoints}) + "\n"
            self.process.stdin.write(line.encode())
            await self.process.stdin.drain()
            answer = await asyncio.wait_for(self.process.stdout.readline(), 10)
            if answer.decode().strip() != f"ok {self._seq}":
                raise RuntimeError(f"service {self.name}: the proxy answered {answer!r} to an endpoint update")
            self.endpoints = list(endpoints)

    async def stop(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        self.process.stdin.close()  # the proxy exits when its control pipe closes
        try:
            await asyncio.wait_for(self.process.wait(), 5)
        except asyncio.TimeoutError:
            self.process.kill()
            await self.process.wait()
