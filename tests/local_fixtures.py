"""Helpers for the local-backend tests: manifests with test-sized tweaks, and a small open-loop load.

The load runs in its own thread and event loop and sends at fixed intended times whatever the
answers do (open loop), recording every request's status, so "0 failed requests" means it.
"""

from __future__ import annotations

import asyncio
import copy
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOYMENT = ROOT / "cluster" / "model-serving-deployment.yaml"
SERVICE = ROOT / "cluster" / "model-serving-service.yaml"
HPA = ROOT / "cluster" / "model-serving-hpa.yaml"
BODY = b'{"instances": [[1.0, 2.0, 5.0]]}'


def manifest(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def deployment(replicas: int | None = None, args: list[str] | None = None, cpu_limit: str | None = "keep") -> dict:
    """The repo's deployment, with replicas / container args / CPU limit changed for a test."""
    d = copy.deepcopy(manifest(DEPLOYMENT))
    container = d["spec"]["template"]["spec"]["containers"][0]
    if replicas is not None:
        d["spec"]["replicas"] = replicas
    if args is not None:
        container["args"] = args
    if cpu_limit != "keep":
        if cpu_limit is None:
            container["resources"]["limits"].pop("cpu")
        else:
            container["resources"]["limits"]["cpu"] = cpu_limit
    return d


@dataclass
class Outcome:
    intended_s: float
    status: int  # 0: no HTTP answer
    replica: str | None
    error: str | None
    latency_s: float


class OpenLoad:
    """Constant-rate open-loop POSTs to `url` until stop(); `outcomes` holds every request."""

    def __init__(self, url: str, rate: float, body: bytes = BODY, timeout: float = 10.0):
        self.url, self.rate, self.body, self.timeout = url, rate, body, timeout
        self.outcomes: list[Outcome] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def __enter__(self) -> OpenLoad:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> list[Outcome]:
        self._stop.set()
        self._thread.join(30)
        return self.outcomes

    async def _main(self) -> None:
        connector = aiohttp.TCPConnector(limit=200)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=self.timeout)) as session:
            start, tasks, i = time.perf_counter(), set(), 0
            while not self._stop.is_set():
                due = start + i / self.rate
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                task = asyncio.create_task(self._one(session, due - start))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                i += 1
            await asyncio.gather(*tasks)

    async def _one(self, session: aiohttp.ClientSession, intended_s: float) -> None:
        sent = time.perf_counter()
        try:
            async with session.post(self.url, data=self.body) as response:
                await response.read()
                outcome = Outcome(intended_s, response.status, response.headers.get("x-servelab-replica"), None,
                                  time.perf_counter() - sent)
        except (aiohttp.ClientError, asyncio.TimeoutError) as error:
            outcome = Outcome(intended_s, 0, None, repr(error), time.perf_counter() - sent)
        self.outcomes.append(outcome)

    def count(self) -> int:
        return len(self.outcomes)


def failures(outcomes: list[Outcome]) -> list[Outcome]:
    return [o for o in outcomes if not 200 <= o.status < 300]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05):
    """Poll `predicate` until it returns something truthy; fail saying `what` was awaited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def closed_loop(url: str, body: bytes, users: int, seconds: float) -> int:
    """`users` clients each sending the next request as soon as the last answered; returns 2xx count."""

    async def user(session: aiohttp.ClientSession, stop_at: float) -> int:
        ok = 0
        while time.perf_counter() < stop_at:
            async with session.post(url, data=body) as response:
                await response.read()
                ok += 200 <= response.status < 300
        return ok

    async def main() -> int:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            stop_at = time.perf_counter() + seconds
            return sum(await asyncio.gather(*(user(session, stop_at) for _ in range(users))))

    return asyncio.run(main())
