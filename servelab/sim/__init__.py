"""A fast queueing simulator: replay a day of traffic in seconds, with the real HPA in the loop.

Requests arrive on the same schedules the load generator uses. Each one is routed to a Ready pod
(round-robin, random or least-outstanding, like a Service), waits in that pod's FIFO queue for
one of its `concurrency` slots, and takes a service time drawn from a measured distribution
(`calibrate` it from a low-load run and a saturated one). The replica policy decides how many
pods exist: a fixed count, the HPA (`servelab.core.hpa`, fed each pod's busy time as its CPU, every
sync period), or a batch job that serves everything queued at scheduled times. New pods serve
only after `startup_s`.

The output is a `servelab.load.Result` with the same columns, summary and metadata as a live run,
including `meta["pods"]` for `servelab.core.cost` and `meta["timeline"]` for the HPA's decisions.

How it is fast: while the set of Ready pods stays the same, with one slot per pod and
round-robin or random routing every arrival of a stretch is assigned at once and each pod's
queue is Lindley's recursion, finish_i = max(arrival_i, finish_i-1) + service_i, solved for all
requests together with a cumulative maximum. Stretches run many HPA syncs ahead; when a sync
changes the replica count, the requests after it are undone and served again by the new set.
Several slots per pod, or least-outstanding routing, need one request at a time (heapq, about a
microsecond each). Pods scaled away leave the Service at once and drain their queue.

A pod whose CPU limit is enforced (`PodSize.cpu_limit_cores`, filled in by `calibrate` from a
run whose backend enforced it) is throttled as CFS does: full speed until the 100 ms period's
quota is spent, then nothing until the next period. The queues are first solved without it; only
the stretches from a period over quota until the queue next idles into a fresh period are served
again one request at a time, so a day below capacity costs little more than without a limit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from servelab.core.result import Result
from servelab.core.schedules import Schedule
from servelab.sim.pod_pool import ROUTINGS, Pods
from servelab.sim.policies import Autoscaled, Batch, Static
from servelab.sim.service_times import PodSize, ServiceTimes, calibrate, capacity_rps

__all__ = ["Autoscaled", "Batch", "PodSize", "ROUTINGS", "ServiceTimes", "Static", "calibrate", "capacity_rps",
           "replica_timeline", "simulate"]


def simulate(
    schedule: Schedule | np.ndarray,
    service: ServiceTimes,
    *,
    policy: Static | Autoscaled | Batch = Static(),
    concurrency: int = 1,
    routing: str = "round-robin",
    startup_s: float = 0.0,
    pod: PodSize | None = None,
    seed: int = 0,
) -> Result:
    """Simulate serving `schedule` (or sorted arrival times in seconds) and return a Result.

    `concurrency` is requests a pod serves at once (slots sharing its FIFO queue); `routing` how
    the Service picks a Ready pod; `startup_s` the time from a pod's creation to Ready (measure it
    with `Cluster.wait_ready`); `pod` its requests, the CPU it burns while serving and its CPU
    limit (default: the pod `service` was calibrated on, else `PodSize()`); `seed` fixes arrivals
    (for random schedules), service times and random routing.

    A pod with an enforced CPU limit below what a request burns is throttled as CFS does (see
    `PodSize`); that is modelled for one request in service per pod (`concurrency=1`), which is
    how `servelab serve` runs the model.
    """
    pod = pod or service.pod or PodSize()
    _check(pod, concurrency, routing)
    arrivals, end = _arrivals(schedule, seed)
    rng = np.random.default_rng(seed)
    answer_s, busy_s = service.draw(len(arrivals), rng)
    cluster = Pods(pod, concurrency, routing, startup_s, rng)
    if isinstance(policy, Batch):
        pod_ids, freed = cluster.run_batch(arrivals, busy_s, policy, end)
    else:
        pod_ids, freed = cluster.run_online(arrivals, busy_s, policy, end)
    done = freed - busy_s + answer_s  # started when a slot freed; answered after its whole answer time
    meta = {
        "mode": "open",
        "backend": "sim",
        "duration_s": float(end),
        "schedule": schedule.to_dict() if isinstance(schedule, Schedule) else None,
        "seed": seed,
        "requests_planned": len(arrivals),
        "policy": policy.to_dict(),
        "routing": routing,
        "concurrency": concurrency,
        "startup_s": startup_s,
        "service_times": service.to_dict(),
        "replicas": cluster.initial,
        "cpu_request_cores": pod.cpu_request_cores,
        "memory_request_gib": pod.memory_request_gib,
        "cpu_busy_cores": pod.cpu_busy_cores,
        "cpu_limit_cores": pod.cpu_limit_cores,
        "cfs_period_s": pod.cfs_period_s,
        "cpu_quota": pod.quota_dict(),
        "client_cpu": 0.0,
        "pods": cluster.pod_usages(end),
        "timeline": cluster.timeline,
    }
    return Result(_frame(arrivals, busy_s, done, pod_ids, cluster.names), meta)


def _check(pod: PodSize, concurrency: int, routing: str) -> None:
    """Refuse what the model does not cover, naming the argument."""
    if pod.throttles and concurrency != 1:
        raise ValueError(
            "a CPU limit's quota is modelled for one request in service per pod (concurrency=1, as "
            "servelab serve runs the model); for several, pass a PodSize without cpu_limit_cores"
        )
    if routing not in ROUTINGS:
        raise ValueError(f"routing must be one of {', '.join(ROUTINGS)}, got {routing!r}")
    if concurrency < 1:
        raise ValueError(f"concurrency is requests a pod serves at once and must be >= 1, got {concurrency}")


def _arrivals(schedule: Schedule | np.ndarray, seed: int) -> tuple[np.ndarray, float]:
    """Send times in seconds, and when the run ends: the schedule's duration, or just after the last arrival."""
    if isinstance(schedule, Schedule):
        return schedule.send_times(seed), schedule.duration
    arrivals = np.asarray(schedule, dtype=np.float64)
    return arrivals, float(arrivals[-1]) + 1e-9 if len(arrivals) else 0.0


def _frame(arrivals: np.ndarray, busy_s: np.ndarray, done: np.ndarray, pod_ids: np.ndarray,
           names: list[str]) -> pd.DataFrame:
    """The live generator's columns: sent = intended (a simulated client never lags); the pod's
    busy time stands in for the server-reported model time."""
    n = len(arrivals)
    latency = done - arrivals
    return pd.DataFrame({  # in core.result.COLUMNS order, uncopied: a simulated day is millions of rows
        "intended_s": arrivals,
        "sent_s": arrivals,
        "latency_s": latency,
        "service_s": latency,
        "status": np.full(n, 200, dtype=np.int64),
        "bytes": np.zeros(n, dtype=np.int64),
        "replica": pd.Categorical.from_codes(pod_ids, categories=names) if n else pd.Categorical([]),
        "error": np.full(n, None, dtype=object),
        "infer_s": busy_s,
    }, copy=False)


def replica_timeline(result: Result) -> pd.DataFrame:
    """One row per HPA sync of a simulated run: t_s, replicas, ready, utilization_pct, desired, reason."""
    return pd.DataFrame(result.meta.get("timeline") or [])
