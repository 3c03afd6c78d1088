"""Running the app under uvicorn: admission control, graceful SIGTERM, the replica header.

- Admission is decided when a request arrives, before it waits for the event loop: past
  `max_concurrency` predictions in flight, a new one gets an immediate 503 with Retry-After
  instead of joining an unbounded queue. GETs (health checks, metrics) are always admitted.
- SIGTERM: readiness turns false at once, the listening socket closes, requests in flight
  finish, and the process exits within the grace period (in-flight requests get all of it but
  the last second, which is for shutting down).
- No access log, uvloop and httptools: the fast path stays fast.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
import warnings

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from servelab.server.app import ModelServer, Options

# uvicorn's hook for starting a request's task, where admission is decided on arrival.
if not hasattr(HttpToolsProtocol, "_start_asgi_task"):  # pragma: no cover - guards a uvicorn upgrade
    raise ImportError("this uvicorn has no HttpToolsProtocol._start_asgi_task; servelab needs uvicorn >= 0.45, < 1")


def _admitting_protocol(server: ModelServer) -> type[HttpToolsProtocol]:
    class AdmittingProtocol(HttpToolsProtocol):
        def _start_asgi_task(self, cycle, app):  # noqa: ANN001 - uvicorn's private signature
            if cycle.scope["method"] == "POST":  # every prediction is a POST; no GET is
                app = server.admit(app)
            super()._start_asgi_task(cycle, app)

    return AdmittingProtocol


class _Uvicorn(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: ModelServer):
        super().__init__(config)
        self.model_server = app

    def handle_exit(self, sig: int, frame) -> None:  # noqa: ANN001
        self.model_server.draining = True  # readiness false before anything closes
        super().handle_exit(sig, frame)


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


def _exit_with_parent(parent_pid: int) -> None:
    """SIGTERM this server once the process that started it is gone (checked every second).

    ServerProcess asks for this through SERVELAB_PARENT_PID. On Linux the kernel's
    PR_SET_PDEATHSIG usually acts first; elsewhere (macOS) this is what stops a server whose
    notebook kernel was killed from holding its port.
    """

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="servelab-parent-watch", daemon=True).start()


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
        http=_admitting_protocol(app),
        lifespan="off",
        access_log=False,
        proxy_headers=False,  # the app never reads client addresses: skip that per-request layer
        log_level="warning",
        server_header=False,
        headers=[("x-servelab-replica", replica)],
        timeout_graceful_shutdown=max(0.1, options.grace_period - 1.0),
    )
    server = _Uvicorn(config, app)
    batching = (
        f"batching up to {options.batch_max_size} rows / {options.batch_max_delay_ms:g} ms"
        if options.batch_max_size
        else "no batching"
    )
    print(
        f"servelab: serving {options.model!r} as {options.name!r} on http://{host}:{port} "
        f"(replica {replica}; {options.threads} thread(s); max {options.max_concurrency} in flight; {batching})\n"
        f"  TF Serving: POST /v1/models/{options.name}:predict   OIP v2: POST /v2/models/{options.name}/infer",
        file=sys.stderr,
        flush=True,
    )
    if os.environ.get("SERVELAB_PARENT_PID"):
        _exit_with_parent(int(os.environ["SERVELAB_PARENT_PID"]))
    server.run(sockets=[sock])
