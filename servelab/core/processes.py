"""Children that cannot outlive their owner, stopping a process tree, and who holds a port.

Every process servelab starts (a model server, a pod, the Service proxy, the batch Job, the
limits enforcer, the load generator's workers) starts here, tied to its owner the same way:
- in its own session (process group), so a signal reaches its whole tree, and signals to the
  owner's group never reach it;
- on Linux, PR_SET_PDEATHSIG makes the kernel SIGKILL it when the owning thread dies (also on
  `kill -9` of a Jupyter kernel), so start children from a thread that lives as long as they
  should (the main thread, in a notebook or a test);
- where there is no PR_SET_PDEATHSIG (macOS), a child that reads PARENT_PID_VARIABLE calls
  `exit_when_orphaned` and shuts itself down within a second of its owner's death.
Standard library only (psutil loads when a port's holder is looked up): the model server image,
which has none of the lab's packages, imports it.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time

PR_SET_PDEATHSIG = 1
PARENT_PID_VARIABLE = "SERVELAB_PARENT_PID"
# Looked up now, in the parent: the child between fork and exec should only make the call.
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None


def die_with_parent(parent_pid: int) -> None:
    """preexec_fn for every child servelab starts: ask the kernel for SIGKILL when the parent
    exits (Linux), and exit now if the parent is already gone (it died before the call)."""
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:
        os._exit(1)


def start(argv: list[str], *, outlive_parent: bool = False, **popen_kw: object) -> subprocess.Popen:
    """Start `argv` in its own process group, killed with this process unless `outlive_parent`.

    `outlive_parent` is for a child that must clean up after its owner (the limits enforcer
    continues the trees it stopped once its stdin closes): it gets its own group only.
    """
    parent = os.getpid()
    tie = {} if outlive_parent else {"preexec_fn": lambda: die_with_parent(parent)}
    return subprocess.Popen(argv, start_new_session=True, **tie, **popen_kw)


async def spawn(argv: list[str], env: dict[str, str] | None = None, **kw: object) -> asyncio.subprocess.Process:
    """`start` for asyncio: `argv` in its own process group, tied to this process's life."""
    parent = os.getpid()
    return await asyncio.create_subprocess_exec(
        *argv, env=env, start_new_session=True, preexec_fn=lambda: die_with_parent(parent), **kw
    )


def exit_when_orphaned() -> None:
    """In a child: SIGTERM this process once the owner named by PARENT_PID_VARIABLE is gone (checked
    every second). On Linux the kernel's PR_SET_PDEATHSIG usually acts first; elsewhere (macOS) this
    is what stops a server whose notebook kernel was killed from holding its port."""
    if not os.environ.get(PARENT_PID_VARIABLE):
        return
    parent_pid = int(os.environ[PARENT_PID_VARIABLE])

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="servelab-parent-watch", daemon=True).start()


def kill_group(pid: int, sig: int = signal.SIGKILL) -> None:
    """Signal the process group `pid` leads (it was started here); gone already, or not ours, is fine."""
    try:
        os.killpg(pid, sig)
    except OSError:
        pass


def kill(process: subprocess.Popen) -> None:
    """SIGKILL the process's whole group, no draining, and reap it."""
    if process.poll() is None:
        kill_group(process.pid)
        process.wait()


def wait_or_kill(process: subprocess.Popen, timeout: float) -> int:
    """Wait up to `timeout` s for a process already asked to stop, then SIGKILL its group; its exit code."""
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        kill(process)
    return process.returncode


def stop(process: subprocess.Popen, grace: float) -> int:
    """Stop a process tree: SIGTERM its group, wait up to `grace` s, then SIGKILL the group; its exit code."""
    if process.poll() is None:
        kill_group(process.pid, signal.SIGTERM)
    return wait_or_kill(process, grace)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether `host:port` can be bound now (without SO_REUSEADDR, as a new listener would)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def port_holder(port: int) -> str | None:
    """'pid 1234 (python -m servelab.cli serve ...)' for the process listening on `port`, if visible."""
    import psutil  # only here: the model server image has no psutil

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
