"""Chaos on the labs' own cluster: does the Service lose requests when pods go, under real load?

Two experiments on the model-serving Deployment and its Service, each under open-loop load at
`fraction` of what the Service was measured to serve a moment before (a closed loop keeping the
pods busy), both with the pods it starts with and with those left after the event, whichever is
less: the rate is this machine's, near capacity, not a trickle, and what is left can carry it
(beyond that, overloaded pods fail their readiness probes and the Service empties). On a machine
with few cores, more pods can serve less than fewer: they share the same cores with the Service
and the load generator. A run whose requests fail before the event is measured and run again.

- scale-down, 4 -> 1 replicas mid-run: the Service stops routing to a pod before the pod is told
  to stop, and the pod finishes what it holds, so no request may be lost.
- kill -9 of one of 4 pods mid-run: only requests that
  pod held while it died may be lost (each failed request must be one the Service reports cut off
  by that pod, and sent before its process was gone); the kubelet restarts the container (at once
  for a first crash) and the pod is Ready again after its usual start-up.

    from servelab import chaos
    report = chaos.run(cluster)   # the Deployment and Service applied
    print(report)
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from servelab.backends import base
from servelab.core import schedules
from servelab.core.result import Result
from servelab.load import runner

if TYPE_CHECKING:
    import pandas as pd

Action = Callable[[], object]  # what an experiment does to the cluster mid-run; what it returns is not used

DEPLOYMENT = "model-serving-deployment"
FRACTION = 0.7  # of the measured capacity: near it, with room for the noise of a shared machine


@dataclass
class ScaleDown:
    """Requests lost while the Deployment scaled from `start` to `end` replicas under load."""

    capacity_rps: float  # closed-loop rate of `end` or `start` replicas (the lower), measured first
    rate_rps: float  # offered during the run
    start: int
    end: int
    requests: int
    lost: int
    answered_by: int  # distinct pods that answered: `start` of them before the scale-down
    answered_at_end: int  # distinct pods that answered the last sixth of the run: `end` once it is done
    failed_before: int  # requests failed before the scale-down: not 0 means the rate was above capacity
    attempts: int  # runs it took to get one whose requests were served until the scale-down


@dataclass
class Kill:
    """Requests lost when one pod was SIGKILLed under load, and how soon it was back."""

    capacity_rps: float  # closed-loop rate of replicas or replicas - 1 pods (the lower), measured first
    rate_rps: float
    replicas: int
    pod: str
    requests: int
    died_ms: float  # from the signal to the pod's process seen gone (its exit, as the kubelet sees it)
    in_flight: int  # requests over the whole Service sent before the pod was gone and unanswered at the kill
    lost: int  # requests that failed
    lost_cut_off_by_pod: int  # failures the Service reported as cut off by the killed pod
    lost_sent_after: int  # failures of requests sent after the pod was gone (the Service should route around it)
    backoff_s: float  # the restart delay the kubelet applied (0 for a first crash)
    restarted_s: float  # kill -> its container running again
    ready_s: float  # kill -> Ready again
    first_start_s: float  # the same pod's first start, running -> Ready, for comparison
    failed_before: int  # requests failed before the kill: not 0 means the rate was above capacity
    attempts: int  # runs it took to get one whose requests were served until the kill


@dataclass
class Report:
    scale_down: ScaleDown
    kill: Kill

    def __str__(self) -> str:
        s, k = self.scale_down, self.kill
        return "\n".join([
            f"scale {s.start} -> {s.end} at {s.rate_rps:.0f} req/s ({s.rate_rps / s.capacity_rps:.0%} of the "
            f"{s.capacity_rps:.0f} req/s served closed-loop): {s.lost} lost of {s.requests}, "
            f"{s.answered_by} pods answered, {s.answered_at_end} in the last sixth of the run "
            f"({s.failed_before} failed before the scale-down; attempt {s.attempts})",
            f"kill -9 of 1 of {k.replicas} pods at {k.rate_rps:.0f} req/s ({k.rate_rps / k.capacity_rps:.0%} of the "
            f"{k.capacity_rps:.0f} req/s served closed-loop): {k.lost} lost of {k.requests}; "
            f"{k.in_flight} in flight over the Service while it died ({k.died_ms:.0f} ms); lost: "
            f"{k.lost_cut_off_by_pod} cut off by the killed pod, {k.lost_sent_after} sent after it was gone "
            f"({k.failed_before} failed before the kill; attempt {k.attempts})",
            f"  back: container restarted {k.restarted_s:.2f} s after the kill (back-off {k.backoff_s:g} s), Ready "
            f"after {k.ready_s:.2f} s (its first start took {k.first_start_s:.2f} s from running to Ready)",
        ])


def capacity(cluster: base.Cluster, replicas: int, seconds: float = 3.0, deployment: str = DEPLOYMENT) -> float:
    """Requests/s the Service answers with `replicas` pods kept busy (a closed loop of 4 users per pod).

    The pods are warmed up first (a pod's first requests are slower), and stay warm for what follows.
    """
    settle(cluster, replicas, deployment)
    url = cluster.service_url()
    runner.run_closed(url, 2 * replicas, 1.0, progress=False)  # warm connections and caches
    return runner.run_closed(url, 4 * replicas, seconds, progress=False).summary()["achieved_rate"]


def settle(cluster: base.Cluster, replicas: int, deployment: str = DEPLOYMENT, timeout_s: float = 60.0) -> None:
    """Scale to `replicas`, all Ready, and wait until no other pod is left terminating."""
    cluster.scale(deployment, replicas)
    cluster.wait_ready(deployment, replicas=replicas, timeout=timeout_s)
    deadline = time.monotonic() + timeout_s
    while len(cluster.pods()) != replicas:
        if time.monotonic() > deadline:
            raise TimeoutError(f"pods still terminating after {timeout_s:g} s: {cluster.pods()}")
        time.sleep(0.1)


def under_load(cluster: base.Cluster, rate: float, duration_s: float, at_s: float,
               action: Action) -> tuple[Result, float]:
    """Open-loop load at `rate` for `duration_s`; `action()` runs about `at_s` into it.

    Returns the run and the wall-clock time `action` ran at, in seconds on the run's own clock
    (the clock of its intended_s and sent_s columns).
    """
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        future = pool.submit(runner.run, cluster.service_url(), schedules.Constant(rate, duration_s), progress=False)
        time.sleep(at_s)
        acted_unix = time.time()
        action()
        result = future.result()
    return result, acted_unix - result.meta["clock_unix_s"]


def near_capacity(cluster: base.Cluster, counts: tuple[int, ...], act: Callable[[], Action], fraction: float = FRACTION,
                  duration_s: float = 12.0, deployment: str = DEPLOYMENT,
                  attempts: int = 3) -> tuple[float, Result, float, int]:
    """Measure the capacity with each of `counts` replicas (the last is the count the run starts
    with), then run at `fraction` of the lowest, with the action `act()` returns run a third of the
    way in. Returns (capacity, run, when the action ran on the run's clock, attempts).

    A run with requests failing before the action did not start below capacity: other programs
    took the cores after it was measured. It is measured and run again, up to `attempts` times.
    """
    for attempt in range(1, attempts + 1):
        lower = min(capacity(cluster, n, deployment=deployment) for n in counts)
        result, at_s = under_load(cluster, fraction * lower, duration_s, duration_s / 3, act())
        if _failed_before(result.frame, at_s) == 0 or attempt == attempts:
            return lower, result, at_s, attempt
    raise AssertionError("unreachable: the last attempt returns")


def _failed_before(frame: pd.DataFrame, at_s: float) -> int:
    return int((~frame[frame.sent_s < at_s].status.between(200, 299)).sum())


def scale_down(cluster: base.Cluster, start: int = 4, end: int = 1, fraction: float = FRACTION,
               duration_s: float = 12.0, deployment: str = DEPLOYMENT) -> ScaleDown:
    """Scale `start` -> `end` a third of the way into a run near the capacity of both."""
    lower, result, at_s, attempts = near_capacity(
        cluster, (end, start), lambda: lambda: cluster.scale(deployment, end), fraction, duration_s, deployment)
    frame = result.frame
    last = frame[frame.sent_s > duration_s * 5 / 6]
    return ScaleDown(lower, fraction * lower, start, end, len(frame), int((~frame.status.between(200, 299)).sum()),
                     frame.replica.nunique(), last.replica.nunique(), _failed_before(frame, at_s), attempts)


def kill(cluster: base.Cluster, replicas: int = 4, fraction: float = FRACTION, duration_s: float = 12.0,
         deployment: str = DEPLOYMENT, timeout_s: float = 60.0) -> Kill:
    """SIGKILL one of `replicas` pods a third of the way into a run near the capacity of all and of the rest."""
    victims = []

    def act() -> Action:
        victims.append(cluster.pods()[0])
        return lambda: os.kill(victims[-1].pid, signal.SIGKILL)

    left, result, at_s, attempts = near_capacity(cluster, (replicas - 1, replicas), act, fraction, duration_s,
                                                 deployment)
    victim, killed_unix = victims[-1], result.meta["clock_unix_s"] + at_s
    cluster.wait_ready(deployment, replicas=replicas, timeout=timeout_s)
    frame = result.frame
    failed = frame[~frame.status.between(200, 299)]
    cut_off = failed.error.fillna("").str.contains(f"127.0.0.1:{victim.port} ", regex=False)
    events = [e for e in cluster.events() if e.object == f"pod/{victim.name}"]
    after = [e for e in events if e.unix_s >= killed_unix]
    before = [e for e in events if e.unix_s < killed_unix]
    # A process takes a moment to die after SIGKILL, and the Service routes to it until then: a
    # request sent in between is one the pod held as much as one sent before the signal.
    gone_s = _first(after, base.POD_EXITED).unix_s - result.meta["clock_unix_s"]
    return Kill(
        capacity_rps=left, rate_rps=fraction * left, replicas=replicas, pod=victim.name, requests=len(frame),
        died_ms=(gone_s - at_s) * 1000,
        in_flight=int(((frame.sent_s <= gone_s) & (frame.sent_s + frame.service_s > at_s)).sum()),
        lost=len(failed), lost_cut_off_by_pod=int(cut_off.sum()), lost_sent_after=int((failed.sent_s > gone_s).sum()),
        backoff_s=float(_first(after, base.POD_RESTARTED).data.get("backoff_s", 0.0)),
        restarted_s=_first(after, base.POD_RUNNING).unix_s - killed_unix,
        ready_s=_first(after, base.POD_READY).unix_s - killed_unix,
        first_start_s=_first(before, base.POD_READY).unix_s - _first(before, base.POD_RUNNING).unix_s,
        failed_before=_failed_before(frame, at_s), attempts=attempts,
    )


def _first(events: list[base.Event], kind: str) -> base.Event:
    found = [e for e in events if e.kind == kind]
    if not found:
        raise RuntimeError(f"no {kind} event among {[e.kind for e in events]}")
    return found[0]


def run(cluster: base.Cluster, replicas: int = 4, fraction: float = FRACTION, duration_s: float = 12.0,
        deployment: str = DEPLOYMENT) -> Report:
    """Both experiments, kill first (at `replicas`), then the scale-down from `replicas` to 1."""
    killed = kill(cluster, replicas, fraction, duration_s, deployment)
    return Report(scale_down(cluster, replicas, 1, fraction, duration_s, deployment), killed)
