"""wrk for the server benches: a POST script, the run, its report as numbers, and CPU pinning.

Pinning puts the server on one core and the clients on the other, as the issue reports were
measured (`taskset -c 0` for the server): the server's CPU is then what it alone can do.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator

import psutil

UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


@contextlib.contextmanager
def post_script(body: bytes) -> Iterator[str]:
    """A wrk Lua script that POSTs `body` as JSON, for as long as the `with` block."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(f"wrk.method = \"POST\"\nwrk.body = '{body.decode()}'\n"
                     "wrk.headers[\"Content-Type\"] = \"application/json\"\n")
    try:
        yield script.name
    finally:
        os.unlink(script.name)


def command(url: str, script: str, *, connections: int, duration_s: float, threads: int = 1,
            timeout_s: float | None = None, cpus: set[int] | None = None) -> list[str]:
    """The wrk command line (under `taskset` when `cpus` is given and taskset exists)."""
    args = [shutil.which("wrk") or "wrk", f"-t{threads}", f"-c{connections}", f"-d{duration_s:g}s", "--latency",
            "-s", script]
    if timeout_s is not None:
        args.append(f"--timeout={timeout_s:g}s")
    args.append(url)
    if cpus and shutil.which("taskset"):
        args = ["taskset", "-c", ",".join(map(str, sorted(cpus))), *args]
    return args


def run(url: str, script: str, **options: object) -> dict:
    """Run wrk (see `command` for the options) and return its report as numbers."""
    out = subprocess.run(command(url, script, **options), capture_output=True, text=True, check=True).stdout
    return parse(out)


def parse(out: str) -> dict:
    """requests, non-2xx, socket errors, seconds, requests/s and p50/p99 in ms from wrk's --latency report."""

    def percentile(p: str) -> float:
        value, unit = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * UNITS_MS[unit]

    done = re.search(r"(\d+) requests in ([\d.]+)(ms|s|m)", out)
    seconds = float(done.group(2)) * {"ms": 0.001, "s": 1.0, "m": 60.0}[done.group(3)]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "requests": int(done.group(1)),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": sum(map(int, socket_errors.groups())) if socket_errors else 0,
        "seconds": seconds,
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": percentile("50"),
        "p99_ms": percentile("99"),
    }


def pin(pid: int, cpus: set[int]) -> None:
    """Every thread of process `pid` (and so the threads it starts later) onto `cpus`."""
    for thread in psutil.Process(pid).threads():
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(thread.id, cpus)
