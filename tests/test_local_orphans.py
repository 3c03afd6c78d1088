"""Killing the Python process that owns a local cluster leaves nothing behind (issue 4, Must show 6).

A Jupyter kernel can be killed outright (kernel restart, OOM, kill -9): no cleanup code runs, so
pods, the Service proxy and the watchdog must die on their own. The owner's node holds two of the
three pods it asks for: the third stays Pending and runs no process, before or after.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import psutil
from local_fixtures import DEPLOYMENT, SERVICE, wait_for

OWNER = textwrap.dedent(f"""
    import time
    from servelab.backends.local import LocalCluster
    from servelab.backends.local.node import Allocatable
    cluster = LocalCluster(service_port=0, node=Allocatable(1.0, 2**33))
    cluster.apply({str(DEPLOYMENT)!r})
    cluster.apply({str(SERVICE)!r})
    cluster.scale("model-serving-deployment", 3)
    while sum(p.ready for p in cluster.pods()) < 2:
        time.sleep(0.1)
    print("ready", [p.status for p in cluster.pods()].count("Pending"), flush=True)
    time.sleep(300)
""")


def test_sigkill_of_the_owner_leaves_no_process_behind():
    owner = subprocess.Popen([sys.executable, "-c", OWNER], stdout=subprocess.PIPE, text=True)
    children: list[psutil.Process] = []
    try:
        assert owner.stdout.readline().strip() == "ready 1"
        children = psutil.Process(owner.pid).children(recursive=True)
        commands = [" ".join(c.cmdline()) for c in children]
        assert sum("servelab.cli serve" in c for c in commands) == 2, commands
        assert any("servelab.backends.local.proxy" in c for c in commands), commands
        os.kill(owner.pid, signal.SIGKILL)
        owner.wait()
        wait_for(lambda: not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE],
                 10, "every pod, proxy and watchdog process to exit")
    finally:  # if the test failed: clean up what this owner started, and nothing else
        owner.kill()
        owner.wait()
        for child in children:
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
