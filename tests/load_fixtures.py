"""A small aiohttp server that misbehaves on purpose, run as its own process for the load tests.

Endpoints (all POST, TF Serving-shaped paths so the load generator uses them as given):
  /ok/v1/models/m:predict      200 with x-servelab-replica and server-timing headers
  /flaky/v1/models/m:predict   every third request answers 500 with a JSON error
  /slow/v1/models/m:predict    answers after 2 s (beyond the tests' timeout)
  /drop/v1/models/m:predict    closes the connection without answering
  /stall/v1/models/m:predict   like /ok, but every STALL_EVERY s the whole endpoint pauses STALL_FOR s

`python tests/load_fixtures.py [STALL_EVERY STALL_FOR]` binds a free port and prints it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from aiohttp import web

PREDICTION = b'{"predictions": [0.75]}'
HEADERS = {"x-servelab-replica": "fixture-0", "server-timing": "infer;dur=0.250", "Content-Type": "application/json"}


def make_app(stall_every: float, stall_for: float) -> web.Application:
    counter = itertools.count(1)
    t0 = time.monotonic()

    async def ok(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=PREDICTION, headers=HEADERS)

    async def flaky(request: web.Request) -> web.Response:
        await request.read()
        if next(counter) % 3 == 0:
            return web.json_response({"error": "injected failure"}, status=500)
        return web.Response(body=PREDICTION, headers=HEADERS)

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2.0)
        return web.Response(body=PREDICTION, headers=HEADERS)

    async def drop(request: web.Request) -> web.Response:
        request.transport.abort()
        raise asyncio.CancelledError

    async def stall(request: web.Request) -> web.Response:
        await request.read()
        phase = (time.monotonic() - t0) % stall_every
        if phase < stall_for:
            await asyncio.sleep(stall_for - phase)
        return web.Response(body=PREDICTION, headers=HEADERS)

    app = web.Application()
    for name, handler in {"ok": ok, "flaky": flaky, "slow": slow, "drop": drop, "stall": stall}.items():
        app.router.add_post(f"/{name}/v1/models/m:predict", handler)
    return app


@pytest.fixture(scope="module")
def servelab_server():
    """A real `servelab serve` (tiny model) for the tests of one module."""
    from servelab.server import ServerProcess

    with ServerProcess(model="tiny", name="my-model") as server:
        yield server


@pytest.fixture(scope="module")
def fixture_url():
    """Base URL of the misbehaving fixture server, shared by the tests of one module."""
    with misbehaving_server() as base:
        yield base


def synthetic_result(latencies_ms, status=None, lag_ms=0.0, meta=None):
    """A Result built by hand (no network): one request every 10 ms with the given latencies."""
    import numpy as np
    import pandas as pd

    from servelab.core.result import Result

    n = len(latencies_ms)
    intended = np.arange(n) * 0.01
    latency = np.asarray(latencies_ms, dtype=float) / 1000.0
    status = np.full(n, 200) if status is None else np.asarray(status)
    sent = intended + np.asarray(lag_ms, dtype=float) / 1000.0
    frame = pd.DataFrame({
        "intended_s": intended, "sent_s": sent, "latency_s": latency, "service_s": latency - (sent - intended),
        "status": status, "bytes": np.where(status == 200, 23, 0),
        "replica": ["r0" if s == 200 else None for s in status],
        "error": [None if s == 200 else ("timeout" if s == 0 else "boom") for s in status],
        "infer_s": np.full(n, 0.0002),
    })
    return Result(frame, {"mode": "open", "duration_s": n * 0.01, "client_cpu": 0.1, "workers": 1, **(meta or {})})


_TIMER_ONLY = """
import asyncio, json, sys, time
from servelab.load.generator import new_event_loop
async def keep(rate, seconds):
    start, lags = time.monotonic() + 0.02, []
    for k in range(int(rate * seconds)):
        due = start + k / rate
        while (delay := due - time.monotonic()) > 0:
            await asyncio.sleep(delay)
        lags.append((time.monotonic() - due) * 1000.0)
    lags.sort()
    return {"p99_ms": lags[int(0.99 * (len(lags) - 1))], "max_ms": lags[-1]}
print(json.dumps(new_event_loop().run_until_complete(keep(float(sys.argv[1]), float(sys.argv[2])))))
"""


@contextmanager
def machine_timing(rate: float, seconds: float):
    """Alongside a measurement, a separate process keeps the same schedule sending nothing.

    Its lateness is the machine's own timing noise (other programs on the cores) during the
    run, so a test can tell a slow generator from a busy machine. Yields a dict filled on exit.
    """
    found: dict = {}
    proc = subprocess.Popen([sys.executable, "-c", _TIMER_ONLY, str(rate), str(seconds)],
                            stdout=subprocess.PIPE, text=True)
    try:
        yield found
    finally:
        found.update(json.loads(proc.communicate(timeout=seconds + 60)[0]))


@contextmanager
def misbehaving_server(stall_every: float = 2.0, stall_for: float = 0.2):
    """Start the fixture server as a subprocess; yield its base URL; stop it on exit."""
    proc = subprocess.Popen([sys.executable, str(Path(__file__)), str(stall_every), str(stall_for)],
                            stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def _serve(stall_every: float, stall_for: float) -> None:
    runner = web.AppRunner(make_app(stall_every, stall_for), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(site._server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    args = [float(a) for a in sys.argv[1:3]] or [2.0, 0.2]
    asyncio.run(_serve(*args))
