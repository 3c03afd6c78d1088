"""One kept-alive connection to a pod: it carries one request at a time and passes the answer back.

Every byte from the pod goes to the client at once, before anything else is done with it (as a
TCP forward would); only then does the parser (httptools, i.e. llhttp) read it, to learn where
the answer ends, so the connection can carry the next request. A HEAD request's answer ends with
its head, whatever length it announces (llhttp cannot know the request was HEAD, so the parser is
replaced after one); a 1xx answer is interim and the real one follows; an answer without length
ends when the pod closes. A connection closing before any byte of answer is the balancer's to
handle (retry or 502); after one, the client's connection is closed too, as through TCP.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import httptools

from servelab.backends.local.proxy.endpoints import Endpoint
from servelab.backends.local.proxy.hop import Hop

if TYPE_CHECKING:
    from servelab.backends.local.proxy.balancer import ClientConnection


class PodConnection(asyncio.Protocol):
    def __init__(self, hop: Hop, endpoint: Endpoint) -> None:
        self.hop, self.endpoint = hop, endpoint
        self.ready = hop.endpoints.flag(endpoint)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.parser = httptools.HttpResponseParser(self)
        self.client: ClientConnection | None = None
        self.reused = False  # it carried a request before: the pod may have closed it while idle
        self.answered = False  # a byte of this request's answer went to the client
        self.ended, self.keep_alive = False, True

    def usable(self) -> bool:
        return self.ready.ready and not self.closed

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = self.hop.wrap(transport)

    def begin(self, client: ClientConnection, reused: bool) -> None:
        """A request (or its first bytes) was just written on this connection: its answer goes to `client`."""
        self.client, self.reused, self.answered, self.ended = client, reused, False, False

    def abandon(self) -> None:
        """Close without telling the client (it answers for itself)."""
        self.client = None
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        client = self.client
        if client is None:
            self.transport.close()  # bytes nobody asked for: what this connection carries next is unknown
            return
        if not client.transport.is_closing():
            client.transport.write(data)  # first: the client waits for these bytes, not for the bookkeeping
        self.answered = True
        if client.pinned:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            client.pinned = True  # 101 Switching Protocols: bytes both ways from now on
        except httptools.HttpParserError:
            self.abandon()  # the client got what the pod sent; nothing after it can be framed
            client.transport.close()
        else:
            if self.ended:
                self._end(client)

    # httptools callbacks, run inside feed_data.

    def on_headers_complete(self) -> None:
        if self.client.head_only and self.parser.get_status_code() >= 200:
            self.ended, self.keep_alive = True, self.parser.should_keep_alive()

    def on_message_complete(self) -> None:
        if self.parser.get_status_code() >= 200:  # 1xx (100 Continue) is interim: the real answer follows
            self.ended, self.keep_alive = True, self.parser.should_keep_alive()

    def _end(self, client: ClientConnection) -> None:
        self.client = None
        if client.head_only:
            self.parser = httptools.HttpResponseParser(self)  # the old one still waits for the announced body
        if self.keep_alive and client.complete:
            self.hop.endpoints.release(self)
        else:
            self.transport.close()
        client.done(self.keep_alive)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        client, self.client = self.client, None
        if client is None:
            return
        if self.answered:
            client.done(False)  # an answer without length ends here; any other was cut short
        elif self.reused:
            client.retry()
        else:
            host, port = self.endpoint
            client.fail("502 Bad Gateway", f"pod {host}:{port} closed the connection before answering")
