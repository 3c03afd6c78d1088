"""`ServerProcess`: a model server in a child process, for tests, labs and the local backend.

The parent binds the listening socket (port 0 picks a free port, with no race) and hands it to
the child, which serves on it (`--fd`). The child is started by servelab.core.processes: in its
own process group, killed by the kernel when the parent dies (Linux), and also told the parent's
pid so that it notices within a second and shuts itself down (any OS), so no server outlives the
notebook or test that started it. Uses only the standard library: importing it is cheap.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from servelab.core import processes


class ServerProcess:
    """`servelab serve` as a subprocess; a context manager that waits until it is ready.

    `opts` are the CLI flags with underscores: threads, workers, max_concurrency, max_connections,
    batch_max_size, batch_max_delay_ms, grace_period, drain_delay, header_timeout, body_timeout,
    stall_every, stall_for. `env` adds environment variables (e.g. POD_NAME for the replica header).
    `drain_delay` defaults to 0 here, unlike `servelab serve`'s 3 s: no load balancer routes to a
    child process, so on `stop()` it stops accepting at once and still answers what it took.

    Note: PR_SET_PDEATHSIG follows the thread that started the child; start servers from a
    thread that lives as long as they should (the main thread, in a notebook or a test).
    """

    def __init__(
        self,
        model: str = "tiny",
        name: str = "my-model",
        port: int = 0,
        host: str = "127.0.0.1",
        *,
        env: dict[str, str] | None = None,
        ready_timeout: float = 60.0,
        **opts: object,
    ):
        self.model = model
        self.name = name
        self.host = host
        self.requested_port = port
        self.env = env
        self.ready_timeout = ready_timeout
        self.opts = {"drain_delay": 0.0, **opts}
        self.port: int | None = None
        self.process: subprocess.Popen | None = None
        self._log = None

    # -- addresses --------------------------------------------------------------------
    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:PORT."""
        if self.port is None:
            raise RuntimeError("the server is not started; use it as a context manager or call start()")
        return f"http://{self.host}:{self.port}"

    @property
    def predict_url(self) -> str:
        """TF Serving predict URL of the served model."""
        return f"{self.url}/v1/models/{self.name}:predict"

    @property
    def infer_url(self) -> str:
        """Open Inference Protocol infer URL of the served model."""
        return f"{self.url}/v2/models/{self.name}/infer"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("the server is not started")
        return self.process.pid

    def command(self, fd: int) -> list[str]:
        args = [sys.executable, "-m", "servelab.server", "--model", self.model, "--name", self.name, "--fd", str(fd)]
        for key, value in self.opts.items():
            if value is not None:
                args += [f"--{key.replace('_', '-')}", str(value)]
        return args

    # -- life cycle -------------------------------------------------------------------
    def start(self) -> ServerProcess:
        """Start the child and wait until /v2/health/ready answers 200."""
        if self.process is not None:
            raise RuntimeError("already started")
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.requested_port))
            sock.listen(2048)
            self.port = sock.getsockname()[1]
            self._log = tempfile.TemporaryFile(prefix="servelab-server-")
            self.process = processes.start(
                self.command(sock.fileno()),
                pass_fds=[sock.fileno()],
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(self.env or {}), processes.PARENT_PID_VARIABLE: str(os.getpid())},
            )
        finally:
            sock.close()  # the child holds its own copy
        try:
            self._wait_ready()
        except BaseException:
            self.kill()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"servelab server exited with code {self.process.returncode} before it was ready:\n{self.output()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/v2/health/ready", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        raise TimeoutError(f"servelab server not ready after {self.ready_timeout} s:\n{self.output()}")

    def output(self) -> str:
        """What the child printed so far (stdout and stderr)."""
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def terminate(self) -> None:
        """Send SIGTERM (graceful: readiness false, drain, exit within the grace period)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the child to exit; its return code (0 after a drain that finished in its grace period)."""
        return self.process.wait(timeout)

    def kill(self) -> None:
        """SIGKILL the child's whole process group, no draining."""
        if self.process is not None:
            processes.kill(self.process)

    def stop(self, timeout: float | None = None) -> int | None:
        """SIGTERM, wait up to the grace period (+5 s), then SIGKILL; returns the exit code."""
        if self.process is None:
            return None
        if timeout is None:
            timeout = float(self.opts.get("grace_period") or 30.0) + 5.0
        return processes.stop(self.process, timeout)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self.port is not None else "not started"
        return f"ServerProcess(model={self.model!r}, name={self.name!r}, {where})"
