"""Running the app under uvicorn: accepting, the SIGTERM drain, the replica header.

Kubernetes' termination contract, timed from SIGTERM (`--drain-delay` D, `--grace-period` G):
1. At once, readiness (/v2/health/ready) answers 503; everything else is served as before,
   new connections included, because the Service, kube-proxy and any load balancer that
   health-checks the pod take a few seconds to stop sending traffic here.
2. After D seconds the server stops accepting (connections already queued in the kernel are
   still taken), and each open connection's next response carries `Connection: close`.
3. It exits with code 0 when the last connection has closed, and at the latest G - 0.5 s after
   SIGTERM, cancelling what still runs then: inside the pod's terminationGracePeriodSeconds,
   before the kubelet's SIGKILL.
Ctrl-C (SIGINT) skips the delay (no load balancer routes to a server stopped by hand); a second
Ctrl-C exits at once. No access log, uvloop and httptools: the fast path stays fast.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import socket
import sys
import time
import warnings

import uvicorn

from servelab.core import processes
from servelab.server.app import ModelServer, Options
from servelab.server.connection import Connection, connection_class
from servelab.server.listener import Listener

EXIT_MARGIN_S = 0.5  # the last part of the grace period, for the process to exit


class _Uvicorn(uvicorn.Server):
    """uvicorn's server with servelab's listener, connections and drain."""

    def __init__(self, config: uvicorn.Config, app: ModelServer, sock: socket.socket):
        super().__init__(config)
        self.model_server = app
        self.signalled_at: float | None = None
        options, admission = app.options, app.admission
        self.listener = Listener(
            sock, admission, lambda: admission.full(self.server_state.default_headers),
            first_bytes_timeout=options.header_timeout,
        )
        self.connection_class: type[Connection] = connection_class(
            admission, app.metrics.request, options.header_timeout, options.body_timeout, self.listener.between_requests
        )

    def handle_exit(self, sig: int, frame) -> None:  # noqa: ANN001
        self.model_server.draining = True  # readiness false before anything else changes
        if self.signalled_at is None:
            self.signalled_at = time.monotonic()
        if sig != signal.SIGTERM:
            super().handle_exit(sig, frame)  # Ctrl-C: stop now, no delay

    async def on_tick(self, counter: int) -> bool:
        if self.signalled_at is not None and time.monotonic() >= self.signalled_at + self.model_server.options.drain_delay:
            self.should_exit = True
        return await super().on_tick(counter)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        loop = asyncio.get_running_loop()
        config, state, connection = self.config, self.server_state, self.connection_class

        def new_connection() -> Connection:
            return connection(config=config, server_state=state, app_state={}, _loop=loop)

        self.listener.start(new_connection)
        self.servers = []
        self.started = True

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Stop accepting, let every connection finish with `Connection: close`, exit within the grace."""
        admission = self.model_server.admission
        self.listener.stop()
        self.connection_class.stopping = True  # connections accepted in the last turn close after one answer
        for connection in list(self.server_state.connections):
            connection.shutdown()
        deadline = (self.signalled_at or time.monotonic()) + self.model_server.options.grace_period - EXIT_MARGIN_S
        while (admission.connections or self.server_state.tasks) and not self.force_exit:
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.05)
        for task in self.server_state.tasks:
            task.cancel(msg="the grace period ended before this request finished")
        for connection in list(self.server_state.connections):
            connection.transport.close()
        await asyncio.sleep(0)  # let the cancelled tasks end
        self.model_server.inference.close()


def listening_socket(host: str, port: int, fd: int | None = None) -> socket.socket:
    """The socket to serve on: an inherited one (fd, as ServerProcess passes it) or a fresh bind."""
    if fd is not None:
        return socket.socket(fileno=fd)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def serve(options: Options, sock: socket.socket) -> None:
    """Serve `options.model` on `sock` until SIGTERM or Ctrl-C."""
    # 1e39 becomes inf in float32 and is rejected with a clear 400; numpy's warning adds nothing.
    warnings.filterwarnings("ignore", "overflow encountered in cast", RuntimeWarning)
    host, port = sock.getsockname()[:2]
    replica = os.environ.get("POD_NAME") or f"{socket.gethostname()}:{port}"
    app = ModelServer(options)
    config = uvicorn.Config(
        app,
        loop="uvloop",
        http="httptools",
        ws="none",  # no WebSocket routes; an upgrade would also take the connection out of the count
        lifespan="off",
        access_log=False,
        proxy_headers=False,  # the app never reads client addresses: skip that per-request layer
        log_level="warning",
        server_header=False,
        headers=[("x-servelab-replica", replica)],
    )
    server = _Uvicorn(config, app, sock)
    batching = (
        f"batching up to {options.batch_max_size} rows / {options.batch_max_delay_ms:g} ms"
        if options.batch_max_size
        else "no batching"
    )
    print(
        f"servelab: serving {options.model!r} as {options.name!r} on http://{host}:{port} (replica {replica}; "
        f"{options.workers} worker(s) x {options.threads} thread(s); max {options.max_concurrency} in flight, "
        f"{options.max_connections} connections; {batching}; on SIGTERM: serve {options.drain_delay:g} s more, "
        f"exit within {options.grace_period:g} s)\n"
        f"  TF Serving: POST /v1/models/{options.name}:predict   OIP v2: POST /v2/models/{options.name}/infer",
        file=sys.stderr,
        flush=True,
    )
    processes.exit_when_orphaned()
    # What is loaded by now (the model, the routes, numpy, onnxruntime) lives as long as the server.
    # Frozen, it is left out of the collector's full passes, which otherwise scan all of it while
    # nothing is served or looked at (20-30 ms, about once a second under load; see `listener`).
    gc.freeze()
    server.run()
