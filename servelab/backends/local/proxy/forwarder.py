"""Per-connection balancing: each client connection is spliced, as bytes, to one pod for its life.

This is what kube-proxy's iptables or IPVS rules do: the pod is chosen (round-robin here) when
the client connects, and nothing above TCP is looked at, so it costs the least per request.
"""

from __future__ import annotations

import asyncio

from servelab.backends.local.proxy.hop import Hop


class Splice(asyncio.Protocol):
    """One side of a forward: bytes in on this side go out on the peer's."""

    def __init__(self, hop: Hop, peer: Splice | None = None) -> None:
        self.hop, self.peer = hop, peer
        self.transport: asyncio.Transport | None = None
        self.pending: list[bytes] = []

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = self.hop.wrap(transport)
        if self.peer is not None:  # the pod side is up: send what the client already sent
            self.peer.peer = self
            for data in self.peer.pending:
                self.transport.write(data)
            self.peer.pending = []

    def data_received(self, data: bytes) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.write(data)
        else:
            self.pending.append(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()

    def pause_writing(self) -> None:  # the receiving side is slow: stop reading the sending side
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()


class ClientSplice(Splice):
    """The client's side: picks the pod when the client connects, the next one if that one refuses."""

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = self.hop.wrap(transport)
        self.hop.spawn(self._connect())

    async def _connect(self) -> None:
        endpoints = self.hop.endpoints
        for endpoint in endpoints.order(endpoints.pick()):
            if await self.hop.open(endpoint, lambda: Splice(self.hop, self)) is not None:
                return
        self.transport.close()
