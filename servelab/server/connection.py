"""One HTTP connection: uvicorn's httptools protocol plus admission, read deadlines and draining.

- Admission: a prediction (every prediction is a POST) past `--max-concurrency` in flight is
  answered with the canned 503 right where its headers end, without an ASGI task, and the
  connection stays open. Counting starts when a request arrives, not when the event loop gets
  to it, so the limit bounds the queue itself.
- Read deadlines: the headers of a request must arrive within `header_timeout` of its first
  byte and its body within `body_timeout` of its headers, else a 408 and the connection
  closes. uvicorn has neither, so a client trickling one header line a second held its
  connection for as long as it liked. A connection that opens and sends nothing is closed
  after the keep-alive timeout, as an idle keep-alive connection is.
- Draining (`shutdown`, called once the server stops accepting): the response in progress,
  or the next request's, carries `Connection: close`, then the connection closes. A client
  mid-way through a request gets its answer instead of a reset; a connection that stays quiet
  for `DRAIN_IDLE_S` more is closed.
- New connections between requests: after each response the listener gets a call
  (`between_requests`), so while the event loop is busy serving, new connections are accepted
  or refused every millisecond or so rather than once per turn of the loop (see `listener`).

The deadlines cost the usual request nothing: a timer is set only when a read ends with a
request half received.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import orjson
from uvicorn.protocols.http.httptools_impl import (
    HttpToolsProtocol,
    RequestResponseCycle,
)

from servelab.server.admission import Admission

# uvicorn's hooks this class builds on; checked here so an upgrade that renames them fails loudly.
for _hook in ("_start_asgi_task", "on_response_complete", "timeout_keep_alive_handler", "_unset_keepalive_if_required"):
    if not hasattr(HttpToolsProtocol, _hook):  # pragma: no cover - guards a uvicorn upgrade
        raise ImportError(f"this uvicorn has no HttpToolsProtocol.{_hook}; servelab needs uvicorn >= 0.45, < 1")

DRAIN_IDLE_S = 1.0  # while draining, an idle connection that sends nothing for this long is closed
_IDLE, _HEADERS, _BODY = 0, 1, 2


class Connection(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 connection with servelab's admission, deadlines and drain.

    Subclassed per server by `connection_class`, which sets the class attributes below.
    """

    admission: Admission
    record: Callable[[str, int, float], None]  # Metrics.request(endpoint, status, seconds)
    header_timeout: float
    body_timeout: float
    between_requests: Callable[[], None]  # Listener.between_requests
    stopping = False  # set on the class when the server stops accepting

    def __init__(self, *args: object, **kwargs: object):
        super().__init__(*args, **kwargs)
        self._phase = _IDLE
        self._deadline: asyncio.TimerHandle | None = None
        self._closing = False

    # -- life cycle -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)
        if self.stopping:
            self.shutdown()

    def connection_lost(self, exc: Exception | None) -> None:
        self.admission.connections -= 1
        self._cancel_deadline()
        super().connection_lost(exc)

    def shutdown(self) -> None:
        """The server has stopped accepting: finish with `Connection: close` instead of cutting off."""
        self._closing = True
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False  # answering: this answer is the last
        elif self._phase == _IDLE:  # between requests: one more may come, briefly
            self._unset_keepalive_if_required()
            self.timeout_keep_alive_task = self.loop.call_later(DRAIN_IDLE_S, self.timeout_keep_alive_handler)
        # else a request is arriving: on_headers_complete makes its answer the last

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self.between_requests()

    # -- reading: phases and their deadlines -----------------------------------------------

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._phase and self._deadline is None and not self.transport.is_closing():
            timeout = self.header_timeout if self._phase == _HEADERS else self.body_timeout
            self._deadline = self.loop.call_later(timeout, self._read_timeout)

    def on_message_begin(self) -> None:
        self._phase = _HEADERS
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._phase = _BODY
        if self._deadline is not None:
            self._cancel_deadline()
        super().on_headers_complete()
        if self._closing and self.cycle is not None:
            self.cycle.keep_alive = False

    def on_message_complete(self) -> None:
        self._phase = _IDLE
        if self._deadline is not None:
            self._cancel_deadline()
        super().on_message_complete()

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _read_timeout(self) -> None:
        """The request's headers or body did not arrive in time: 408, and the connection closes."""
        self._deadline = None
        cycle = self.cycle if self._phase == _BODY else None
        if cycle is not None and cycle.response_started:  # already answered (a 413, a 503): just close
            self.transport.close()
            return
        part, limit = ("headers", self.header_timeout) if self._phase == _HEADERS else ("body", self.body_timeout)
        body = orjson.dumps({"error": f"request {part} not received within {limit:g} s; send the whole request promptly"})
        self.transport.write(
            b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(body), body)
        )
        if cycle is not None:  # the app is waiting for the body: it now gets a disconnect, its replies go nowhere
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.close()

    # -- admission -------------------------------------------------------------------------

    def _start_asgi_task(self, cycle: RequestResponseCycle, app) -> None:  # noqa: ANN001 - uvicorn's signature
        if cycle.scope["method"] == "POST":
            admission = self.admission
            if admission.in_flight >= admission.max_concurrency:
                self._shed(cycle)
                return
            admission.in_flight += 1
            app = _counted(app, admission)
        super()._start_asgi_task(cycle, app)

    def _shed(self, cycle: RequestResponseCycle) -> None:
        """The canned 503, written now; the rest of the request's body is read and dropped."""
        close = self._closing or not cycle.keep_alive
        self.transport.write(self.admission.busy(self.server_state.default_headers, close))
        cycle.response_started = cycle.response_complete = True
        self.record("infer" if cycle.scope["path"].endswith("/infer") else "predict", 503, 0.0)
        if close:
            self.transport.close()
        else:
            self.on_response_complete()


def _counted(app, admission: Admission):  # noqa: ANN001, ANN202 - ASGI callables
    """`app`, counted in flight until it returns."""

    async def admitted(scope: dict, receive: object, send: object) -> None:
        try:
            await app(scope, receive, send)
        finally:
            admission.in_flight -= 1

    return admitted


def connection_class(admission: Admission, record: Callable[[str, int, float], None], header_timeout: float,
                     body_timeout: float, between_requests: Callable[[], None]) -> type[Connection]:
    """A Connection subclass bound to one server's admission, metrics, timeouts and listener."""
    return type(
        "ServelabConnection",
        (Connection,),
        {"admission": admission, "record": staticmethod(record), "header_timeout": header_timeout,
         "body_timeout": body_timeout, "between_requests": staticmethod(between_requests)},
    )
