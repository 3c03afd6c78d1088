"""The event loop that sends requests and records what happened to each one.

One `Shard` is the work of one generator process (or thread): a slice of an open-loop schedule,
or some of the closed-loop users. `run_shard` runs it on a fresh event loop and returns a
`ShardRecord` of raw per-request arrays; `servelab.load.runner` splits work into shards, shows
progress and merges the records into a `Result`.

Open loop: each request is fired as its own task at its intended time, so a slow response never
delays the next send; the only limit is `max_inflight`, and a request refused by it is recorded
as a failure, never skipped. Closed loop: each user sends, waits for the answer, thinks, repeats.
Times are `time.monotonic()`, which all processes on one machine share.
"""

from __future__ import annotations

import asyncio
import importlib.util
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from servelab.load.http import Pool
from servelab.load.pacing import Pacer

if TYPE_CHECKING:
    import threading

# How often a shard reports progress (completions and fresh latencies) to the parent.
PROGRESS_EVERY_S = 0.5
_INFER_DUR = re.compile(r"(?:^|,)\s*infer\s*;(?:[^,]*;)?\s*dur=([0-9.eE+-]+)")
StartAt = Callable[[], float]  # blocks until the common start, then returns it (monotonic s)
Report = Callable[[int, int, list[float]], None]  # (requests done, ok, latencies since the last report)


@dataclass
class Shard:
    """One generator's share of a run: open loop if `times` is given, else closed loop with `users`."""

    url: str
    body: bytes
    headers: dict[str, str]
    timeout: float
    max_inflight: int
    times: np.ndarray | None = None  # intended send offsets (s) from the common start
    users: int = 0
    duration: float = 0.0
    think_time: float = 0.0


@dataclass
class ShardRecord:
    """Raw per-request arrays from one shard; times are offsets (s) from the common start."""

    intended: np.ndarray
    sent: np.ndarray
    done: np.ndarray
    status: np.ndarray
    nbytes: np.ndarray
    infer: np.ndarray
    replica: list
    error: list
    cpu_s: float = 0.0
    wall_s: float = 0.0
    pacing: str | None = None  # how the open loop waited for send times (servelab.load.pacing); None: closed loop


@dataclass
class _Recorder:
    """Per-request columns as plain lists, preallocated (closed loop grows them as users send).

    Lists, not numpy arrays: writing one Python float into a list costs a fraction of writing it
    into an array, and this runs for every request; `to_record` converts once at the end, and
    parses the server-timing headers there too, outside the sending.
    """

    capacity: int
    size: int = 0
    n_done: int = 0
    n_ok: int = 0
    fresh: list = field(default_factory=list)  # latencies (s) completed since the last progress report

    def __post_init__(self) -> None:
        n = max(self.capacity, 1)
        self.intended, self.sent, self.done = [math.nan] * n, [math.nan] * n, [math.nan] * n
        self.status, self.nbytes = [0] * n, [0] * n
        self.replica: list = [None] * n
        self.timing: list = [None] * n  # server-timing header values
        self.error: list = [None] * n

    def add(self, intended: float) -> int:
        """Claim the next slot for a request intended at `intended` (absolute monotonic time)."""
        i = self.size
        if i == len(self.intended):
            for column, fill in ((self.intended, math.nan), (self.sent, math.nan), (self.done, math.nan),
                                 (self.status, 0), (self.nbytes, 0), (self.replica, None), (self.timing, None),
                                 (self.error, None)):
                column.extend([fill] * i)
        self.intended[i] = intended
        self.size = i + 1
        return i

    def finish(self, i: int, status: int, nbytes: int = 0, replica: str | None = None,
               server_timing: str | None = None, error: str | None = None, done: float | None = None) -> None:
        """Record request `i`'s outcome; `done` is when its response was complete (default: now)."""
        done = time.monotonic() if done is None else done
        self.done[i] = done
        self.status[i] = status
        self.nbytes[i] = nbytes
        self.replica[i] = replica
        self.timing[i] = server_timing
        self.error[i] = error
        self.n_done += 1
        if 200 <= status < 300:
            self.n_ok += 1
            self.fresh.append(done - self.intended[i])

    def to_record(self, start: float) -> ShardRecord:
        n = self.size
        times = lambda column: np.array(column[:n], dtype=np.float64) - start  # noqa: E731
        infer = [_infer_ms(t) for t in self.timing[:n]]
        return ShardRecord(
            intended=times(self.intended), sent=times(self.sent), done=times(self.done),
            status=np.array(self.status[:n], dtype=np.int16), nbytes=np.array(self.nbytes[:n], dtype=np.int64),
            infer=np.array([math.nan if ms is None else ms / 1000.0 for ms in infer], dtype=np.float64),
            replica=self.replica[:n], error=self.error[:n],
        )


def _infer_ms(server_timing: str | None) -> float | None:
    """Model time from a `server-timing: infer;dur=<ms>` header, if the server sent one."""
    if not server_timing:
        return None
    match = _INFER_DUR.search(server_timing)
    return float(match.group(1)) if match else None


async def _send(pool: Pool, shard: Shard, rec: _Recorder, i: int) -> None:
    """Send one request and record its outcome, whatever it is."""
    rec.sent[i] = time.monotonic()
    try:
        resp = await pool.send()
    except asyncio.TimeoutError:
        rec.finish(i, 0, error=f"timeout: no complete response within {shard.timeout:g} s")
    except asyncio.CancelledError:
        rec.finish(i, 0, error="cancelled: the run was stopped before the response arrived")
        raise
    except Exception as exc:  # every failure is recorded; none may vanish from the results
        rec.finish(i, 0, error=f"{type(exc).__name__}: {exc}".strip(": "))
    else:
        status = resp.status
        error = None if 200 <= status < 300 else resp.head.decode("utf-8", "replace") or f"HTTP {status}, empty body"
        rec.finish(i, status, resp.nbytes, resp.replica, resp.server_timing, error, resp.done)


async def _open_loop(pool: Pool, shard: Shard, rec: _Recorder, start: float, stop: threading.Event) -> str:
    """Fire each request at its intended time as its own task; never wait for a response to send.

    Returns how it waited for send times (`Pacer.kind`)."""
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task] = set()
    clock = time.monotonic
    pacer = Pacer()
    try:
        for offset in shard.times.tolist():  # Python floats: cheaper arithmetic than numpy scalars
            due = start + offset
            if due > clock():
                await pacer.until(due)
            if stop.is_set():
                break
            i = rec.add(due)
            if len(tasks) >= shard.max_inflight:
                rec.sent[i] = clock()
                rec.finish(i, 0, error=f"not sent: {len(tasks)} requests already in flight (max_inflight)")
                continue
            task = loop.create_task(_send(pool, shard, rec, i))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    finally:
        pacer.close()
    await _drain(tasks, stop)
    return pacer.kind


async def _closed_loop(pool: Pool, shard: Shard, rec: _Recorder, start: float, stop: threading.Event) -> None:
    """`users` concurrent users: send, wait for the answer, think, repeat until the duration ends."""
    end = start + shard.duration

    async def user() -> None:
        while not stop.is_set() and (now := time.monotonic()) < end:
            await _send(pool, shard, rec, rec.add(now))
            if shard.think_time:
                await asyncio.sleep(shard.think_time)

    await asyncio.sleep(max(0.0, start - time.monotonic()))
    await _drain({asyncio.ensure_future(user()) for _ in range(shard.users)}, stop)


async def _drain(tasks: set[asyncio.Task], stop: threading.Event) -> None:
    """Wait for in-flight requests (each bounded by the timeout); cancel them if stopped."""
    while tasks:
        done, pending = await asyncio.wait(tasks, timeout=0.2)
        tasks = pending
        if stop.is_set():
            for task in pending:
                task.cancel()


async def _report(rec: _Recorder, report: Report) -> None:
    while True:
        await asyncio.sleep(PROGRESS_EVERY_S)
        fresh, rec.fresh = rec.fresh, []
        report(rec.n_done, rec.n_ok, fresh)


async def _run(shard: Shard, start_at: StartAt, report: Report, stop: threading.Event) -> ShardRecord:
    capacity = len(shard.times) if shard.times is not None else 1024
    rec = _Recorder(capacity)
    pool = Pool(shard.url, shard.body, shard.headers, size=shard.max_inflight, timeout=shard.timeout)
    try:
        start = start_at()  # blocks until the parent says go: all shards share one start time
        reporter = asyncio.ensure_future(_report(rec, report))
        usage = _Usage(start, shard)
        loop_fn = _open_loop if shard.times is not None else _closed_loop
        pacing = await loop_fn(pool, shard, rec, start, stop)
        usage.stop()
        reporter.cancel()
    finally:
        pool.close()
    report(rec.n_done, rec.n_ok, rec.fresh)
    record = rec.to_record(start)
    record.cpu_s, record.wall_s, record.pacing = usage.cpu_s, usage.wall_s, pacing
    return record


class _Usage:
    """This process's CPU time against wall time while it sends, leaving out the final wait for
    slow answers (which would dilute a busy generator's CPU use into an idle-looking average)."""

    def __init__(self, start: float, shard: Shard) -> None:
        self.cpu0, self.wall0 = time.process_time(), time.monotonic()
        self.cpu_s = self.wall_s = 0.0
        last = shard.times[-1] if shard.times is not None and len(shard.times) else shard.duration
        self._handle = asyncio.get_running_loop().call_later(max(0.0, start + last - self.wall0), self.stop)

    def stop(self) -> None:
        if not self.wall_s:
            self.cpu_s, self.wall_s = time.process_time() - self.cpu0, time.monotonic() - self.wall0
        self._handle.cancel()


# uvloop when installed (it comes with uvicorn[standard] on Linux/macOS): less CPU per request.
EVENT_LOOP = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"


def new_event_loop() -> asyncio.AbstractEventLoop:
    if EVENT_LOOP == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def run_shard(shard: Shard, start_at: StartAt, report: Report, stop: threading.Event) -> ShardRecord:
    """Run one shard to completion on a fresh event loop in the calling thread.

    `start_at()` returns the common absolute start time (it may block until all shards are
    ready), `report(n_done, n_ok, fresh_latencies)` receives progress, `stop.is_set()` aborts.
    """
    loop = new_event_loop()
    try:
        return loop.run_until_complete(_run(shard, start_at, report, stop))
    finally:
        loop.close()
