"""`run` (open loop) and `run_closed` (closed loop): split the work, show progress, merge a Result.

Work is split into shards (see `generator`): one runs in a thread of this process, which works
the same in a terminal and inside a notebook's already-running event loop; when one core cannot
keep up with a rate, more shards run in worker processes, each taking an interleaved share of
the schedule (request k goes to worker k mod n), all starting at one shared instant.
"""

from __future__ import annotations

import math
import os
import queue
import socket
import sys
import threading
import time
from dataclasses import replace
from datetime import datetime, timezone
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import numpy as np
import orjson

from servelab.core import processes, schedules
from servelab.core.result import Result, environment
from servelab.load import generator
from servelab.load.generator import Shard, ShardRecord
from servelab.load.progress import Progress, describe

if TYPE_CHECKING:
    from servelab.backends.base import Cluster

# Requests/s per generator process before `workers=None` adds another. A request costs about
# 0.1 ms of client CPU, and the pacer (servelab.load.pacing) waits without spinning: on the
# 2-core machine this was measured on (bench/load.py) one process sent 3000 req/s with 0.41 of a
# core and 4000 with 0.47, lag p99 under 2 ms. Fewer processes leave more of a laptop's cores to
# the server being measured. (Without timerfd, on macOS, waits under 1 ms spin and a process tops
# out sooner; the summary warns when the generator was the limit.)
RATE_PER_WORKER = 3000
DEFAULT_MAX_INFLIGHT = 1000
_START_MARGIN_S = 0.05  # between "all ready" and the first send, so every shard starts on time
PROGRESS_MIN_S = 3.0  # runs shorter than this get no progress bar by default

TFSERVING_BODY = {"instances": [[1.0, 2.0, 5.0]]}
OIP_BODY = {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1.0, 2.0, 5.0]}]}
_PATHS = {"tfserving": "/v1/models/{model}:predict", "oip": "/v2/models/{model}/infer"}


def target_url(url: str, protocol: str = "tfserving", model: str = "my-model") -> str:
    """The predict/infer URL: `url` itself if it names an endpoint, else the protocol's path under it."""
    if protocol not in _PATHS:
        raise ValueError(f"protocol must be 'tfserving' (TF Serving v1 REST) or 'oip' (Open Inference v2), "
                         f"got {protocol!r}")
    if url.endswith(":predict") or url.endswith("/infer"):
        return url
    return url.rstrip("/") + _PATHS[protocol].format(model=model)


def request_body(protocol: str, body: Any = None) -> bytes:
    """JSON bytes to send: `body` as given (dict/list encoded, str/bytes as is) or the protocol's default."""
    if body is None:
        body = TFSERVING_BODY if protocol == "tfserving" else OIP_BODY
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return orjson.dumps(body)


def auto_workers(times: np.ndarray) -> int:
    """Generator processes needed for the busiest second of the schedule, at most one per CPU."""
    if len(times) == 0:
        return 1
    peak = np.bincount(times.astype(np.int64)).max()
    return int(min(os.cpu_count() or 1, max(1, math.ceil(peak / RATE_PER_WORKER))))


def run(url: str, schedule: schedules.Schedule, *, protocol: str = "tfserving", body: Any = None,
        timeout: float = 10.0, progress: bool | None = None, meta: dict | None = None, cluster: Cluster | None = None,
        model: str = "my-model", workers: int | None = None, max_inflight: int = DEFAULT_MAX_INFLIGHT,
        seed: int = 0, progress_title: str = "") -> Result:
    """Open-loop load: send each request at its intended time from `schedule`, whatever the server does.

    Latency is measured from the intended send time, so a stalled server (or a generator that
    falls behind) shows up in the percentiles instead of being hidden. `progress=None` shows a
    bar for runs longer than a few seconds; `workers=None` picks the number of generator
    processes the schedule's peak rate needs. At most `max_inflight` requests wait for an
    answer at once; a request over that limit is not sent and is recorded as a failure.
    The bar names the rate offered now (a Step's step, a curve's rate), after `progress_title`
    if given (a sweep's "sweep 3/9").
    """
    times = schedule.send_times(seed=seed)
    workers = auto_workers(times) if workers is None else max(1, int(workers))
    template = _shard(url, protocol, body, model, timeout, max(1, max_inflight // workers))
    shards = [replace(template, times=times[w::workers]) for w in range(workers)]
    title = f"{progress_title}: " if progress_title else ""
    bar = Progress(len(times), title + describe(schedule), _show(progress, schedule.duration),
                   lambda elapsed: title + describe(schedule, elapsed))
    info = {"mode": "open", "protocol": protocol, "schedule": schedule.to_dict(), "seed": seed,
            "requests_planned": len(times)}
    return _execute(shards, schedule.duration, bar, template, info, meta, cluster)


def warm_up(url: str, seconds: float = 1.0, rate: float = 20.0) -> None:
    """Send a second of requests and forget them: a new pod's first answers are slow (lab 01), not typical."""
    run(url, schedules.Constant(rate, seconds), progress=False)


def run_closed(url: str, users: int, duration: float, *, think_time: float = 0.0, protocol: str = "tfserving",
               body: Any = None, timeout: float = 10.0, progress: bool | None = None, meta: dict | None = None,
               cluster: Cluster | None = None, model: str = "my-model", workers: int = 1) -> Result:
    """Closed-loop load: `users` each send a request, wait for its answer, think, and repeat.

    This is how many load tools work. It is here to show what it hides: while the server is
    stalled, the users wait instead of sending, so the stall touches only a few requests.
    Latency is measured from the actual send.
    """
    if users < 1:
        raise ValueError(f"users must be at least 1, got {users}")
    workers = max(1, min(int(workers), users))
    template = _shard(url, protocol, body, model, timeout, users)
    shares = [len(range(w, users, workers)) for w in range(workers)]
    shards = [replace(template, users=n, duration=float(duration), think_time=float(think_time)) for n in shares]
    bar = Progress(None, f"closed loop, {users} users", _show(progress, duration))
    info = {"mode": "closed", "protocol": protocol, "users": users, "think_time_s": think_time}
    return _execute(shards, float(duration), bar, template, info, meta, cluster)


def _shard(url: str, protocol: str, body: Any, model: str, timeout: float, max_inflight: int) -> Shard:
    return Shard(url=target_url(url, protocol, model), body=request_body(protocol, body),
                 headers={"Content-Type": "application/json"}, timeout=float(timeout), max_inflight=max_inflight)


def _show(progress: bool | None, duration: float) -> bool:
    """Whether to draw a bar: as asked, or by default only for a run long enough to wait for."""
    return duration >= PROGRESS_MIN_S if progress is None else bool(progress)


def _execute(shards: list[Shard], duration: float, bar: Progress, template: Shard, info: dict, meta: dict | None,
             cluster: Cluster | None) -> Result:
    started_utc = datetime.now(timezone.utc).isoformat(timespec="seconds")
    started_unix, started_monotonic = time.time(), time.monotonic()
    with bar:
        records = (_in_thread if len(shards) == 1 else _in_processes)(shards, bar)
    ended_unix = time.time()
    cpu_fraction = max(r.cpu_s / r.wall_s if r.wall_s > 0 else 0.0 for r in records)
    # The pods as they were during this run only, so its cost is this run's, not the pods' whole life.
    cluster_meta = cluster.run_metadata(start_unix_s=started_unix, end_unix_s=ended_unix) if cluster is not None else {}
    run_meta = {
        **environment(),
        "url": template.url,
        "body": template.body.decode("utf-8", "replace"),
        "timeout_s": template.timeout,
        "max_inflight": template.max_inflight * len(shards),
        "workers": len(shards),
        "client_cpu": round(cpu_fraction, 3),
        "event_loop": generator.EVENT_LOOP,
        "pacing": records[0].pacing,
        "started_utc": started_utc,
        # The wall-clock time of the frame's 0 (intended_s, sent_s), to line requests up with a cluster's events.
        "clock_unix_s": started_unix + (bar.started - started_monotonic),
        **info,
        "backend": None,  # unknown unless a cluster (or `meta`) says; kept so saved runs share keys
        "replicas": None,
        "added_round_trip_ms": None,
        "added_round_trip_jitter_ms": None,
        **cluster_meta,
        **_added_round_trip(template.url, cluster_meta),
        **(meta or {}),
    }
    return Result.from_records(records, run_meta, duration=duration)


def _added_round_trip(url: str, cluster_meta: dict) -> dict:
    """The round trip the Service at `url` adds to each request (0 straight to a pod), so tables can
    label a run by distance; nothing when the cluster does not list its Services' round trips."""
    if "services" not in cluster_meta:
        return {}
    port = urlsplit(url).port
    service = next((s for s in cluster_meta["services"] if urlsplit(s["url"]).port == port), None)
    return {"added_round_trip_ms": service["added_round_trip_ms"] if service else 0.0,
            "added_round_trip_jitter_ms": service["added_round_trip_jitter_ms"] if service else 0.0}


def _in_thread(shards: list[Shard], bar: Progress) -> list[ShardRecord]:
    """One shard on its own event loop in a thread: works even where a loop already runs (Jupyter)."""
    out: dict[str, Any] = {}
    stop, reports = threading.Event(), queue.Queue()

    def target() -> None:
        try:
            out["record"] = generator.run_shard(shards[0], lambda: bar.begin(time.monotonic() + _START_MARGIN_S),
                                                lambda *a: reports.put(a), stop)
        except BaseException as exc:  # re-raised in the caller's thread
            out["error"] = exc
        finally:
            reports.put(None)

    thread = threading.Thread(target=target, name="servelab-load", daemon=True)
    thread.start()
    try:
        while (report := reports.get()) is not None:
            bar.update(0, *report)
    finally:
        stop.set()
        thread.join()
    if "error" in out:
        raise out["error"]
    return [out["record"]]


def _in_processes(shards: list[Shard], bar: Progress) -> list[ShardRecord]:
    """Each shard in a worker process (see servelab.load.worker), all starting at one instant."""
    workers = [_Worker(shard) for shard in shards]
    try:
        for w in workers:
            w.expect("ready")
        start = bar.begin(time.monotonic() + _START_MARGIN_S)
        for w in workers:
            w.conn.send(("start", start))
        records: dict[int, ShardRecord] = {}
        while len(records) < len(workers):
            for conn in wait([w.conn for i, w in enumerate(workers) if i not in records]):
                i = next(i for i, w in enumerate(workers) if w.conn is conn)
                kind, *rest = workers[i].receive()
                if kind == "progress":
                    bar.update(i, *rest)
                elif kind == "done":
                    records[i] = rest[0]
    finally:
        for w in workers:
            w.close()
    return [records[i] for i in range(len(workers))]


class _Worker:
    """A generator worker process and the socket to it."""

    def __init__(self, shard: Shard) -> None:
        ours, theirs = socket.socketpair()
        package_root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
        self.proc = processes.start([sys.executable, "-m", "servelab.load.worker", str(theirs.fileno())],
                                    pass_fds=[theirs.fileno()], env=env)
        theirs.close()
        self.conn = Connection(ours.detach())
        self.conn.send(("shard", shard))

    def receive(self) -> tuple:
        try:
            msg = self.conn.recv()
        except EOFError:
            msg = ("error", f"exited with code {self.proc.wait()} without sending its results")
        if msg[0] == "error":
            raise RuntimeError(f"load generator worker (pid {self.proc.pid}) failed: {msg[1]}")
        return msg

    def expect(self, kind: str, timeout: float = 60.0) -> None:
        if not self.conn.poll(timeout):
            raise RuntimeError(f"load generator worker (pid {self.proc.pid}) did not start within {timeout:g} s")
        msg = self.receive()
        if msg[0] != kind:
            raise RuntimeError(f"load generator worker sent {msg[0]!r} where {kind!r} was expected")

    def close(self) -> None:
        try:
            self.conn.send(("stop",))
        except OSError:
            pass
        self.conn.close()
        processes.wait_or_kill(self.proc, 15)
