"""ServerProcess: free ports, the child's command line, and no server outliving its parent."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest
from server_fixtures import call

from servelab.server import ServerProcess


def test_port_zero_gives_each_server_its_own_port_and_stop_ends_it():
    with ServerProcess() as first, ServerProcess(model="tiny", name="other") as second:
        assert first.port != second.port
        assert call("POST", second.url + "/v1/models/other:predict", '{"instances": [1, 2, 5]}').status == 200
    assert first.process.poll() is not None and second.process.poll() is not None


def test_options_become_flags():
    server = ServerProcess(model="medium", max_concurrency=5, batch_max_delay_ms=2.5, grace_period=None)
    assert server.command(9)[3:] == ["--model", "medium", "--name", "my-model", "--fd", "9",
                                     "--max-concurrency", "5", "--batch-max-delay-ms", "2.5"]


def test_a_server_that_cannot_start_says_why():
    with pytest.raises(RuntimeError, match="stall-every"):
        ServerProcess(stall_every=1.0).start()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_server_dies_with_its_parent():
    parent = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent("""
            import sys, time
            from servelab.server import ServerProcess
            server = ServerProcess().start()
            print(server.pid, flush=True)
            time.sleep(600)
        """)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        child = int(parent.stdout.readline())
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 10
    while _alive(child):
        assert time.monotonic() < deadline, f"server {child} outlived its parent"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (dead, not yet reaped by init) counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_server_started_without_pdeathsig_still_stops_when_its_parent_dies():
    """The portable backstop (macOS has no PR_SET_PDEATHSIG): SERVELAB_PARENT_PID."""
    parent = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent("""
            import os, subprocess, sys, time
            env = {**os.environ, "SERVELAB_PARENT_PID": str(os.getpid())}
            child = subprocess.Popen([sys.executable, "-m", "servelab.server", "--port", "0"], env=env,
                                     start_new_session=True)
            print(child.pid, flush=True)
            time.sleep(600)
        """)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        child = int(parent.stdout.readline())
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 30
    while _alive(child):
        if time.monotonic() > deadline:
            os.kill(child, 9)
            raise AssertionError(f"server {child} outlived its parent")
        time.sleep(0.1)
