"""The Service and endpoints controllers of the local cluster: one proxy process per Service, fed its Ready pods.

A Service listens on its manifest's port (or the cluster's `service_port`), so re-running a lab in the
same process first closes the earlier cluster that still holds that port.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from servelab.backends.local.objects import Objects, Service, matches
from servelab.backends.local.proxy.round_trip import RoundTrip
from servelab.backends.local.service_proxy import ServiceProxy


class ServiceController:
    """`port`: where every Service listens instead of its own port (None: its own; 0: any free port)."""

    def __init__(self, objects: Objects, mode: str, port: int | None,
                 free_port: Callable[[int], Awaitable[None]]) -> None:
        self.objects, self.mode, self.port, self.free_port = objects, mode, port, free_port

    async def apply(self, doc: dict, old: Service | None) -> None:
        name = doc["metadata"]["name"]
        port = self.port if self.port is not None else int(doc["spec"]["ports"][0]["port"])
        round_trip = RoundTrip.of_service(doc)
        if old is not None:
            if old.proxy.requested_port == port and old.proxy.round_trip == round_trip:
                old.manifest = doc
                return
            await old.proxy.stop()
        await self.free_port(port)
        proxy = ServiceProxy(name, port, self.mode, round_trip)
        await proxy.start()
        self.objects.services[name] = Service(doc, proxy, self.objects.now())
        await self.endpoints_changed()  # pods already Ready behind it: a new proxy starts with none

    async def delete(self, entry: Service) -> None:
        await entry.proxy.stop()

    async def endpoints_changed(self) -> None:
        """Send each Service the addresses of its Ready pods; returns once the proxies confirm."""
        pods = list(self.objects.pods())
        updates = []
        for s in self.objects.services.values():
            endpoints = [("127.0.0.1", p.port) for p in pods if p.ready and not p.deleting and matches(s.selector, p.labels)]
            updates.append(s.proxy.set_endpoints(endpoints))
        await asyncio.gather(*updates)

    async def stop_all(self) -> None:
        await asyncio.gather(*(s.proxy.stop() for s in self.objects.services.values()))

    def holds(self, port: int) -> bool:
        return any(s.proxy.port == port for s in self.objects.services.values())

    def cpu_s(self) -> float:
        """CPU seconds the Service proxies have used so far: what forwarding costs this machine."""
        import psutil

        used = 0.0
        for s in list(self.objects.services.values()):
            try:
                times = psutil.Process(s.proxy.process.pid).cpu_times()
            except (psutil.Error, AttributeError):
                continue
            used += times.user + times.system
        return used
