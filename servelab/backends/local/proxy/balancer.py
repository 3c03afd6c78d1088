"""Per-request balancing: a client's connection cut into requests, each sent to the next Ready pod.

Every fraction of a millisecond on this path shows in the labs' latency (`python -m bench local`
measures the hop), so it is built to do as little as possible between a byte's arrival and its
departure:
- a client waiting for its next request already holds an idle kept-alive connection to the next
  pod in turn (chosen when the previous answer ended, off the request's path; one connection to
  each pod is opened as soon as it is Ready), so no request waits for a connect;
- a request's bytes are written to that pod as they arrive, and only then fed to the parser
  (httptools, i.e. llhttp), which reports where the request ends; the parser needs no offsets
  because bytes are never re-cut, only passed on;
- everything is a protocol callback: no task, future or stream buffer per request (one task only
  when no idle connection is at hand and one has to be opened).
A client that sends a request before the answer to the previous one ended (HTTP pipelining) is
pinned to that pod for the rest of its connection, as a TCP forward: the pod answers in order,
round-robin is lost for that client, and closing is then the pod's business. A protocol upgrade
is pinned the same way. `Expect: 100-continue` is the pod's to answer, and its interim answer
passes through.
Failures: a pod that refuses a connection (it just died) is skipped for the next one, nothing
having been sent. A request on a kept-alive connection that closes before any byte of answer is
sent once more on a fresh connection (as HTTP clients do: the pod may have closed it while it
was idle), so a killed pod's in-flight requests may be retried elsewhere, which kube-proxy would
not do. A request on a fresh connection that dies unanswered gets 502; with no Ready pod, 503.
"""

from __future__ import annotations

import asyncio
import json

import httptools

from servelab.backends.local.proxy.endpoints import Endpoint
from servelab.backends.local.proxy.hop import Hop
from servelab.backends.local.proxy.upstream import PodConnection

MAX_HEAD = 64 * 1024


class ClientConnection(asyncio.Protocol):
    """One client's connection: one request in flight at a time, each over a pod connection of its own."""

    def __init__(self, hop: Hop) -> None:
        self.hop = hop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.pod: PodConnection | None = None  # held for the next request, then carrying it (None: connecting)
        self.request: bytes | bytearray = b""  # this request so far, until its answer begins: to send again
        self.in_flight = False  # a request began and its answer has not ended
        self.complete = False  # ... and all of it has arrived
        self.head_done = self.head_only = False  # its head was read; it is a HEAD (its answer has no body)
        self.keep_alive = True
        self.pinned = False  # every byte goes to `pod` as it comes, unparsed (pipelining, upgrade)

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = self.hop.wrap(transport)
        self.pod = self.hop.endpoints.take()

    def data_received(self, data: bytes) -> None:
        if self.in_flight:
            self._more(data)
            return
        self.in_flight, self.request = True, data
        pod = self.pod
        if pod is not None and not pod.usable():
            self.hop.endpoints.release(pod)  # closes it: its pod left the Service or closed it
            pod = self.pod = self.hop.endpoints.take()
        if pod is not None:
            pod.transport.write(data)  # first: the client waits on this, not on reading it
            pod.begin(self, reused=True)
        self._parse(data)
        if pod is None and self.in_flight:  # nothing fit was held, and the request was not refused
            connect(self.hop, self)

    def _more(self, data: bytes) -> None:
        """Bytes while a request is in flight: the rest of it, or (pipelining) the next one."""
        if self.complete:
            self.pinned = True  # the next request, before this answer ended: the same pod answers both, in order
        pod = self.pod
        if pod is not None:
            pod.transport.write(data)
        if pod is None or not pod.answered:
            if not isinstance(self.request, bytearray):
                self.request = bytearray(self.request)
            self.request += data
        if not self.pinned:
            self._parse(data)

    def _parse(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.pinned = True  # what follows is another protocol: pass it on as it comes
        except httptools.HttpParserError as error:
            if not self.pinned:
                self._refuse("400 Bad Request", f"malformed HTTP request: {error}")
        else:
            if not (self.head_done or self.pinned) and len(self.request) > MAX_HEAD:
                self._refuse("431 Request Header Fields Too Large", f"request head over {MAX_HEAD // 1024} KiB")

    # httptools callbacks, run inside feed_data.

    def on_message_begin(self) -> None:
        if self.complete:
            self.pinned = True  # a second request in the same read, before the first one's answer

    def on_headers_complete(self) -> None:
        self.head_done = True
        self.head_only = self.parser.get_method() == b"HEAD"

    def on_message_complete(self) -> None:
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive()

    # Called by the pod connection, or by connect().

    def connected(self, pod: PodConnection) -> None:
        """A new connection for the current request: what came so far goes now, the rest as it comes."""
        self.pod = pod
        pod.begin(self, reused=False)
        pod.transport.write(self.request)

    def retry(self) -> None:
        """The held connection closed unanswered (its pod had closed it while idle): send on a fresh one."""
        self.pod = None
        connect(self.hop, self)

    def fail(self, status: str, message: str) -> None:
        """Answer from the proxy itself, with a JSON error as the model server gives them; the connection
        stays open if the request was read to its end."""
        body = json.dumps({"error": message}).encode()
        if not self.transport.is_closing():
            self.transport.write(f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: "
                                 f"{len(body)}\r\nx-servelab-proxy: service\r\n\r\n".encode() + body)
        self.done(True)

    def done(self, pod_keeps_alive: bool) -> None:
        """The answer is through: close if either side asked to or the request was cut, else hold the next pod."""
        keep = self.complete and self.keep_alive and pod_keeps_alive
        self.in_flight = self.complete = self.head_done = False
        self.pod, self.request = None, b""
        if not keep:
            self.transport.close()
        elif not self.transport.is_closing():
            self.pod = self.hop.endpoints.take()  # held for the next request, off its path

    def _refuse(self, status: str, message: str) -> None:
        """The request cannot be read: drop what went to the pod and answer from here, then close."""
        pod, self.pod = self.pod, None
        if pod is not None:
            pod.abandon()
        if pod is not None and pod.answered:
            self.transport.close()  # the pod's own answer has begun: ours cannot follow it
            return
        self.keep_alive = False
        self.fail(status, message)

    def connection_lost(self, exc: Exception | None) -> None:
        pod, self.pod = self.pod, None
        if pod is None:
            return
        if not self.in_flight:
            self.hop.endpoints.release(pod)  # held and unused: back to the pool
        elif self.pinned or not self.complete:
            pod.abandon()  # the request was cut short: what that connection carries next is unknown
        # else the pod's answer ends unread and its connection goes back to the pool


def connect(hop: Hop, client: ClientConnection) -> None:
    """Open a connection for the client's request: to the next pod in turn, else the others; 503 if none."""
    endpoints = hop.endpoints
    if not endpoints.ready:
        client.fail("503 Service Unavailable", f"no Ready pod behind service {hop.name}")
        return
    hop.spawn(_connect(hop, client, endpoints.order(endpoints.pick())))


async def _connect(hop: Hop, client: ClientConnection, order: list[Endpoint]) -> None:
    for endpoint in order:
        pod = await hop.open(endpoint, lambda endpoint=endpoint: PodConnection(hop, endpoint))
        if pod is None:
            continue
        if client.transport.is_closing():
            hop.endpoints.release(pod)  # the client left meanwhile: keep the connection for another
        else:
            client.connected(pod)
        return
    client.fail("503 Service Unavailable", f"no pod behind service {hop.name} accepted a connection")


def preopen(hop: Hop, endpoints: list[Endpoint]) -> None:
    """One idle connection to each new pod, so its first request does not wait for a connect."""
    for endpoint in endpoints:
        hop.spawn(_open_idle(hop, endpoint))


async def _open_idle(hop: Hop, endpoint: Endpoint) -> None:
    pod = await hop.open(endpoint, lambda endpoint=endpoint: PodConnection(hop, endpoint))
    if pod is not None:
        hop.endpoints.release(pod)
