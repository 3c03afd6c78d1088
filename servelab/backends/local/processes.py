"""Starting child processes that cannot outlive their owner, and finding who holds a port.

Three layers, because one is not enough everywhere:
- every child starts in its own session (process group), so a kill reaches its whole tree;
- on Linux, PR_SET_PDEATHSIG makes the kernel SIGKILL the child when the owning thread dies
  (also on `kill -9` of a Jupyter kernel);
- a watchdog process (`python -m servelab.backends.local.processes`) holds a pipe from the owner
  and, when the pipe closes for any reason, SIGKILLs every process group it was told about.
"""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import socket
import subprocess
import sys

import psutil

from servelab.server.process import die_with_parent


async def spawn(argv: list[str], env: dict[str, str] | None = None, **kw) -> asyncio.subprocess.Process:
    """Start `argv` in its own process group, tied to this process's life."""
    parent = os.getpid()
    return await asyncio.create_subprocess_exec(
        *argv, env=env, start_new_session=True, preexec_fn=lambda: die_with_parent(parent), **kw
    )


def kill_group(pid: int, sig: int = signal.SIGKILL) -> None:
    """Signal the process group `pid` leads (it was started by `spawn`); gone already is fine."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class Watchdog:
    """The owner's half: a child that SIGKILLs registered process groups when the owner is gone."""

    def __init__(self) -> None:
        parent = os.getpid()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "servelab.backends.local.processes", str(parent)],
            stdin=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=lambda: die_with_parent(parent),
        )

    def watch(self, pid: int) -> None:
        self._send(f"+{pid}")

    def forget(self, pid: int) -> None:
        self._send(f"-{pid}")

    def _send(self, line: str) -> None:
        try:
            self.process.stdin.write(f"{line}\n".encode())
            self.process.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass

    def close(self) -> None:
        """Closing the pipe is the signal: the watchdog kills what is left and exits."""
        try:
            self.process.stdin.close()
        except BrokenPipeError:
            pass
        self.process.wait(timeout=10)


def _watchdog_main() -> int:
    groups: set[int] = set()
    for line in sys.stdin:
        pid = int(line[1:])
        (groups.add if line[0] == "+" else groups.discard)(pid)
    for pid in groups:
        kill_group(pid)
    return 0


def port_problem(host: str, port: int) -> str | None:
    """None if `host:port` can be bound now, else which process holds it and what to do."""
    if port == 0:
        return None
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
            return None
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                return f"cannot listen on {host}:{port}: {error.strerror}"
    holder = port_holder(port)
    return (
        f"port {port} is already in use{' by ' + holder if holder else ''}. Stop that process, or "
        f"close the cluster that holds it (cluster.close()), or pass service_port=<another port>."
    )


def port_holder(port: int) -> str | None:
    """'pid 1234 (python -m servelab.cli serve ...)' for the process listening on `port`, if visible."""
    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, OSError):
        return None
    for c in connections:
        if c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN and c.pid:
            try:
                command = " ".join(psutil.Process(c.pid).cmdline())[:100]
            except psutil.Error:
                command = "?"
            return f"pid {c.pid} ({command})"
    return None


if __name__ == "__main__":
    sys.exit(_watchdog_main())
