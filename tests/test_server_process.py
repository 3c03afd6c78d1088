"""ServerProcess: free ports, the child's command line, and no server outliving its parent."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import psutil
import pytest
from server_fixtures import call

from servelab.server import ServerProcess


def test_port_zero_gives_each_server_its_own_port_and_stop_ends_it():
    with ServerProcess() as first, ServerProcess(model="tiny", name="other") as second:
        assert first.port != second.port
        assert call("POST", second.url + "/v1/models/other:predict", '{"instances": [1, 2, 5]}').status == 200
    assert first.process.poll() is not None and second.process.poll() is not None


def test_options_become_flags_and_a_child_drains_without_the_delay():
    server = ServerProcess(model="medium", max_concurrency=5, batch_max_delay_ms=2.5, grace_period=None, workers=2)
    assert server.command(9)[3:] == ["--model", "medium", "--name", "my-model", "--fd", "9", "--drain-delay", "0.0",
                                     "--max-concurrency", "5", "--batch-max-delay-ms", "2.5", "--workers", "2"]
    assert ServerProcess(drain_delay=2).command(9)[-2:] == ["--drain-delay", "2"]


def test_a_server_that_cannot_start_says_why():
    with pytest.raises(RuntimeError, match="stall-every"):
        ServerProcess(stall_every=1.0).start()


def _kill_parent_and_wait_for(script: str, timeout: float) -> None:
    """Run `script` (which starts a server and prints its pid) in a parent we SIGKILL, then
    wait until that server is gone; kill it and fail if it outlives the timeout."""
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], stdout=subprocess.PIPE, text=True)
    try:
        child = psutil.Process(int(parent.stdout.readline()))
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + timeout
    while _running(child):
        if time.monotonic() > deadline:
            child.kill()
            raise AssertionError(f"server {child.pid} outlived its parent by {timeout} s")
        time.sleep(0.05)


def _running(process: psutil.Process) -> bool:
    """Alive and not a zombie (dead, waiting for init to reap it)."""
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_server_dies_with_its_parent():
    _kill_parent_and_wait_for("""
        import time
        from servelab.server import ServerProcess
        print(ServerProcess().start().pid, flush=True)
        time.sleep(600)
    """, timeout=10)


def test_server_started_without_pdeathsig_still_stops_when_its_parent_dies():
    """The portable backstop (macOS has no PR_SET_PDEATHSIG): SERVELAB_PARENT_PID."""
    _kill_parent_and_wait_for("""
        import os, subprocess, sys, time
        env = {**os.environ, "SERVELAB_PARENT_PID": str(os.getpid())}
        child = subprocess.Popen([sys.executable, "-m", "servelab.server", "--port", "0"], env=env,
                                 start_new_session=True)
        print(child.pid, flush=True)
        time.sleep(600)
    """, timeout=30)
