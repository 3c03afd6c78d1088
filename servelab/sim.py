"""A fast queueing simulator: replay a day of traffic in seconds, with the real HPA in the loop.

Requests arrive on the same schedules the load generator uses. Each one is routed to a Ready pod
(round-robin, random or least-outstanding, like a Service), waits in that pod's FIFO queue for
one of its `concurrency` slots, and takes a service time drawn from a measured distribution
(`calibrate` it from a low-load run and a saturated one). The replica policy decides how many
pods exist: a fixed count, the HPA (`servelab.hpa`, fed each pod's busy time as its CPU, every
sync period), or a batch job that serves everything queued at scheduled times. New pods serve
only after `startup_s`.

The output is a `servelab.load.Result` with the same columns, summary and metadata as a live run,
including `meta["pods"]` for `servelab.cost` and `meta["timeline"]` for the HPA's decisions.

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

import bisect
import heapq
import itertools
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from servelab import hpa
from servelab.cost import PodUsage
from servelab.load.result import Result
from servelab.load.schedules import Schedule

ROUTINGS = ("round-robin", "random", "least-outstanding")
SPECULATE_SYNCS = 40


@dataclass(frozen=True)
class ServiceTimes:
    """Per request: how long a lone request takes to answer, and how long of that it holds a pod.

    A request's answer time includes work outside the server (client, network, kernel) that does
    not stop the pod from taking the next request; only the `busy` part queues others. Empirical
    times are resampled as (answer, busy) pairs; exponential ones (for theory) are all busy.
    Busy seconds burn `PodSize.cpu_busy_cores` each; `pod` is the pod they were measured on
    (`calibrate` fills it in, and `simulate` uses it unless given another).
    """

    kind: str  # "empirical" or "exponential"
    mean_s: float  # mean answer time
    source: str
    samples_s: np.ndarray | None = None  # answer times of a lone request
    busy_s: np.ndarray | None = None  # the part of each that holds a pod's slot
    pod: PodSize | None = None  # the pod measured: requests, CPU per busy second, enforced limit

    @classmethod
    def empirical(cls, values_s, source: str = "given array", busy_s=None, pod: PodSize | None = None) -> ServiceTimes:
        """From measured answer times; `busy_s` (same length) defaults to all of each answer.

        A busy time may exceed its answer when busy time is spread at the pod's average speed
        (`calibrate` from a saturated run without CPU counters): a pod under a CPU limit answers a
        lone request at full speed but pays for it out of its quota.
        """
        samples = np.asarray(values_s, dtype=np.float64)
        busy = samples if busy_s is None else np.asarray(busy_s, dtype=np.float64)
        keep = np.isfinite(samples) & np.isfinite(busy)
        samples, busy = samples[keep], busy[keep]
        if len(samples) == 0 or samples.min() < 0 or busy.min() < 0:
            raise ValueError("service times must be a non-empty array of seconds >= 0")
        return cls("empirical", float(samples.mean()), source, samples, busy, pod)

    @classmethod
    def exponential(cls, mean_s: float) -> ServiceTimes:
        return cls("exponential", float(mean_s), f"exponential, mean {mean_s * 1000:g} ms")

    def draw(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(answer times, busy times) for n requests."""
        if self.kind == "exponential":
            times = rng.exponential(self.mean_s, n)
            return times, times
        picks = rng.integers(len(self.samples_s), size=n)
        return self.samples_s[picks], self.busy_s[picks]

    def to_dict(self) -> dict:
        d = {"kind": self.kind, "mean_s": self.mean_s, "source": self.source}
        if self.samples_s is not None:
            d.update(count=len(self.samples_s), p50_s=float(np.median(self.samples_s)),
                     busy_mean_s=float(self.busy_s.mean()))
        if self.pod is not None:
            d["pod"] = asdict(self.pod)
        return d


def calibrate(result: Result | str | Path, saturated: Result | str | Path | None = None) -> ServiceTimes:
    """Service times from a measured open-loop run (a Result or a saved directory), and its pod.

    Answer times are its successful requests' latencies. How long each holds the pod ("busy"),
    best first:

    - from the pods' own CPU counters over the run (`meta["pods"][i]["cpu_used_core_s"]`, which
      the local backend reads from the pod's cgroup or /proc): CPU seconds per request, spread over
      requests by their server-reported model time (`infer_s`) plus an equal share of the rest.
      `servelab serve` runs the model inline on one event loop, so a busy second burns one core,
      and the returned `pod` carries the run's CPU limit when the backend enforced it: the
      simulator then throttles as CFS does. Calibrate at a moderate rate (well below capacity but
      not idle): what a request costs there is what it costs in the trace, and an open loop, not
      a closed one, is how the trace will arrive.
    - else from `saturated`, a run of the same server pushed past what it can serve: its achieved
      rate per replica sizes busy time, spread evenly (no quota modelled; the pod burns the limit).
    - else the whole answer time counts as busy, which overstates queueing (the client and network
      part of a request does not block the server).
    """
    result = Result.load(result) if isinstance(result, (str, Path)) else result
    ok = result.frame.loc[result.ok]
    if len(ok) == 0:
        raise ValueError("the run has no successful requests to calibrate from")
    # From the intended send in an open loop, as the live latencies it will be compared with are:
    # the generator's own lag is part of what a learner measures.
    answer = ok["latency_s" if result.meta.get("mode", "open") == "open" else "service_s"].to_numpy()
    model = ok["infer_s"].fillna(0.0).to_numpy() if "infer_s" in ok else np.zeros(len(ok))
    source = f"{len(ok)} successful requests of a {result.meta.get('backend', 'live')} run"
    pods = result.meta.get("pods") or []
    cpu_s = sum(p.get("cpu_used_core_s") or 0.0 for p in pods)
    if cpu_s > 0:
        pod = PodSize.from_meta(result.meta)
        per_request = cpu_s / len(ok) / pod.cpu_busy_cores
        busy = _spread(model, per_request)
        limit = f"limit {pod.cpu_limit_cores:g} CPU enforced" if pod.cpu_limit_cores else pod.note or "no CPU limit"
        source += f"; {per_request * 1000:.2f} ms of CPU per request from the pods' counters ({limit})"
        return ServiceTimes.empirical(answer, source, busy, pod)
    if saturated is None:
        return ServiceTimes.empirical(answer, source)
    saturated = Result.load(saturated) if isinstance(saturated, (str, Path)) else saturated
    capacity = saturated.summary()["achieved_rate"] / (saturated.meta.get("replicas") or 1)
    return ServiceTimes.empirical(answer, f"{source}; busy sized to {capacity:.0f} req/s per pod", _spread(model, 1.0 / capacity))


def _spread(model_s: np.ndarray, mean_s: float) -> np.ndarray:
    """Busy times averaging `mean_s`: each request's model time plus an equal share of the rest
    (or model times scaled down, if the model alone averages more)."""
    if model_s.mean() <= mean_s:
        return model_s + (mean_s - model_s.mean())
    return model_s * (mean_s / model_s.mean())


@dataclass(frozen=True)
class PodSize:
    """One pod: its requests (defaults: cluster/model-serving-deployment.yaml), the CPU a request
    burns while in service, and the CPU limit the kernel enforces, if any.

    With `cpu_limit_cores` set, the pod runs under CFS bandwidth control as a container does: each
    `cfs_period_s` it may use `cpu_limit_cores x cfs_period_s` CPU-seconds. A request in service
    burns `cpu_busy_cores` (1 for a single-threaded server at full speed); once the period's quota
    is spent the pod stalls until the next period starts, whatever it was doing. Without a limit
    (or when the limit is no more than `cpu_busy_cores`) service never stalls. `note` says why no
    limit is modelled when a run had one that was not enforced.
    """

    cpu_request_cores: float = 0.5
    memory_request_gib: float = 0.25
    cpu_busy_cores: float = 0.5  # per request in service; default: the limit, a pod slowed evenly (no quota)
    cpu_limit_cores: float | None = None  # enforced CPU limit: the CFS quota per period
    cfs_period_s: float = 0.1  # the kernel's default cpu.cfs_period_us, 100 ms
    note: str = ""

    @classmethod
    def from_meta(cls, meta: dict, cpu_busy_cores: float | None = None) -> PodSize:
        """The pod a run used (its `meta`: requests, limits, whether limits were enforced).

        `cpu_busy_cores` defaults to the run's own (a simulated run records it), else 1:
        `servelab serve` runs the model inline on one event loop.
        A limit the backend did not enforce (no cgroups: e.g. a non-root JupyterHub) is not modelled,
        since the live pod was not throttled either; `note` says so.
        """
        limit = meta.get("cpu_limit_cores")
        request = meta.get("cpu_request_cores") or limit or cls.cpu_request_cores
        note = ""
        if limit and meta.get("limits_enforced") is False:
            note = (f"CPU limit {limit:g} not modelled: the {meta.get('backend', 'live')} backend did not enforce it "
                    f"({meta.get('limits_note') or 'no reason given'}), so the measured pod was not throttled")
            limit = None
        return cls(
            cpu_request_cores=request,
            memory_request_gib=meta.get("memory_request_gib") or cls.memory_request_gib,
            cpu_busy_cores=cpu_busy_cores or meta.get("cpu_busy_cores") or 1.0,
            cpu_limit_cores=limit,
            cfs_period_s=meta.get("cfs_period_s") or cls.cfs_period_s,
            note=note,
        )

    @property
    def throttles(self) -> bool:
        """Whether the quota can ever stall service: a limit below what a request in service burns."""
        return self.cpu_limit_cores is not None and self.cpu_limit_cores < self.cpu_busy_cores

    def quota_dict(self) -> dict:
        """For a result's metadata: the quota modelled, or why none is."""
        if self.throttles:
            return {"limit_cores": self.cpu_limit_cores, "period_s": self.cfs_period_s,
                    "quota_s": self.cpu_limit_cores * self.cfs_period_s}
        why = self.note or ("no CPU limit" if self.cpu_limit_cores is None else
                            f"the limit ({self.cpu_limit_cores:g}) is at least what a request burns ({self.cpu_busy_cores:g})")
        return {"limit_cores": None, "note": why}


def capacity_rps(service: ServiceTimes, pod: PodSize | None = None) -> float:
    """Requests per second one pod (one slot) can serve: by its busy time, and under a CPU limit by
    how much of its quota each request spends."""
    pod = pod or service.pod or PodSize()
    busy = float(service.busy_s.mean()) if service.busy_s is not None else service.mean_s
    rate = 1.0 / busy
    if pod.throttles:
        rate = min(rate, pod.cpu_limit_cores / (busy * pod.cpu_busy_cores))
    return rate


@dataclass(frozen=True)
class Static:
    """A fixed number of pods, all Ready from the start."""

    replicas: int = 1

    def to_dict(self) -> dict:
        return {"kind": "static", "replicas": self.replicas}


@dataclass(frozen=True)
class Autoscaled:
    """Pods managed by the HPA algorithm, synced every `sync_period_s` on each pod's busy CPU."""

    spec: hpa.HPASpec
    initial_replicas: int | None = None  # default: spec.min_replicas
    sync_period_s: float = hpa.SYNC_PERIOD_S

    @classmethod
    def from_manifest(cls, path: str | Path, **kwargs) -> Autoscaled:
        """From an HPA manifest file, e.g. cluster/model-serving-hpa.yaml."""
        return cls(hpa.HPASpec.from_manifest(yaml.safe_load(Path(path).read_text())), **kwargs)

    def to_dict(self) -> dict:
        spec = asdict(self.spec)
        return {"kind": "hpa", "spec": spec, "initial_replicas": self.initial_replicas, "sync_period_s": self.sync_period_s}


@dataclass(frozen=True)
class Batch:
    """A scheduled job: requests wait for the next run (at `run_at_s`, then every `period_s`), which
    starts `replicas` pods that work through the queue and stop when it is empty."""

    replicas: int = 1
    period_s: float = 86400.0
    run_at_s: float = 0.0

    def to_dict(self) -> dict:
        return {"kind": "batch", **asdict(self)}


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
    if pod.throttles and concurrency != 1:
        raise ValueError(
            "a CPU limit's quota is modelled for one request in service per pod (concurrency=1, as "
            "servelab serve runs the model); for several, pass a PodSize without cpu_limit_cores"
        )
    if routing not in ROUTINGS:
        raise ValueError(f"routing must be one of {', '.join(ROUTINGS)}, got {routing!r}")
    if concurrency < 1:
        raise ValueError(f"concurrency is requests a pod serves at once and must be >= 1, got {concurrency}")
    if isinstance(schedule, Schedule):
        arrivals, end = schedule.send_times(seed), schedule.duration
    else:
        arrivals = np.asarray(schedule, dtype=np.float64)
        end = float(arrivals[-1]) + 1e-9 if len(arrivals) else 0.0
    rng = np.random.default_rng(seed)
    answer_s, busy_s = service.draw(len(arrivals), rng)
    cluster = _Cluster(pod, concurrency, routing, startup_s, rng)
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


def _frame(arrivals, busy_s, done, pod_ids, names) -> pd.DataFrame:
    """The live generator's columns: sent = intended (a simulated client never lags); the pod's
    busy time stands in for the server-reported model time."""
    n = len(arrivals)
    latency = done - arrivals
    return pd.DataFrame({  # in load.result.COLUMNS order, uncopied: a simulated day is millions of rows
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


class _Cluster:
    """The pods of one simulation and their queues."""

    def __init__(self, size: PodSize, concurrency: int, routing: str, startup_s: float, rng: np.random.Generator):
        self.size, self.concurrency, self.routing, self.startup_s, self.rng = size, concurrency, routing, startup_s, rng
        self.quota = _Quota(size) if size.throttles else None
        self.names: list[str] = []
        self.created: list[float] = []
        self.ready_at: list[float] = []
        self.ended: list[float | None] = []
        self.live: list[int] = []  # pods not scaled away, oldest first
        self.free_at = np.zeros(0)  # one slot per pod: when its queue empties
        self.slots: list[list[float]] = []  # several slots per pod: a heap of free times each
        self.outstanding: list[list[float]] = []  # least-outstanding: finish times still ahead, per pod
        self.used_s = np.zeros(0)  # seconds of service per pod (x slots in use)
        self.last_finish = np.zeros(0)
        self.busy: np.ndarray | None = None  # [pod, sync bin] seconds of service, for the HPA's CPU
        self.bin_s = hpa.SYNC_PERIOD_S
        self.rr = 0
        self.initial = 0
        self.timeline: list[dict] = []

    # -- pods ---------------------------------------------------------------------------------------

    def add_pods(self, count: int, now: float, ready_at: float) -> None:
        for _ in range(count):
            self.names.append(f"model-serving-sim-{len(self.names)}")
            self.created.append(now)
            self.ready_at.append(ready_at)
            self.ended.append(None)
            self.live.append(len(self.names) - 1)
            self.slots.append([ready_at] * self.concurrency)
            self.outstanding.append([])
        self.free_at = np.concatenate((self.free_at, np.full(count, ready_at)))
        self.used_s = np.concatenate((self.used_s, np.zeros(count)))
        self.last_finish = np.concatenate((self.last_finish, np.full(count, ready_at)))
        if self.quota is not None:
            self.quota.add(count)
        if self.busy is not None:
            self.busy = np.vstack((self.busy, np.zeros((count, self.busy.shape[1]))))

    def ready(self, now: float) -> np.ndarray:
        """Pods a Service would route to at `now`; if none is Ready yet, the starting ones (requests wait)."""
        ready = [i for i in self.live if self.ready_at[i] <= now]
        return np.array(ready or self.live, dtype=np.int64)

    def next_ready_after(self, now: float) -> float:
        return min((self.ready_at[i] for i in self.live if self.ready_at[i] > now), default=math.inf)

    def remove_pods(self, count: int, now: float) -> None:
        """Scale down as a ReplicaSet does: not-yet-Ready pods first, then the newest."""
        leaving = sorted(self.live, key=lambda i: (self.ready_at[i] <= now, -self.created[i]))[:count]
        for i in leaving:
            self.ended[i] = now  # out of the Service now; its queue still drains
        self.live = [i for i in self.live if i not in leaving]

    def pod_usages(self, end: float) -> list[dict]:
        usages = []
        for i, name in enumerate(self.names):
            stop = self.ended[i] if self.ended[i] is not None else end
            usages.append(PodUsage(
                name=name,
                start_s=self.created[i],
                end_s=float(max(stop, self.last_finish[i])),
                cpu_request_cores=self.size.cpu_request_cores,
                memory_request_gib=self.size.memory_request_gib,
                cpu_used_core_s=float(self.used_s[i] * self.size.cpu_busy_cores),
            ).to_dict())
        return usages

    # -- policies -----------------------------------------------------------------------------------

    def run_online(self, arrivals, busy_s, policy, end):
        """Static or HPA: serve stretch by stretch between syncs and pods becoming Ready."""
        autoscaler = None
        if isinstance(policy, Autoscaled):
            autoscaler = hpa.Autoscaler(policy.spec, metric_window_s=policy.sync_period_s)
            self.bin_s = policy.sync_period_s
            self.busy = np.zeros((0, int(end // self.bin_s) + 2))
            self.initial = policy.initial_replicas or policy.spec.min_replicas
        else:
            self.initial = policy.replicas
        if self.initial < 1:
            raise ValueError("the simulation needs at least one pod to start with")
        self.add_pods(self.initial, 0.0, 0.0)
        # One-slot round-robin/random queues are solved many syncs ahead, betting that the replica
        # count holds; at the first sync that changes it, the requests after that sync are undone.
        ahead = SPECULATE_SYNCS if self.concurrency == 1 and self.routing != "least-outstanding" else 1
        pod_ids = np.zeros(len(arrivals), dtype=np.int64)
        finish = np.zeros(len(arrivals))
        t0, k = 0.0, 1  # k: the next sync, at k * bin_s
        while t0 < end:
            last_sync = (k + ahead - 1) * self.bin_s if autoscaler else math.inf
            t1 = min(last_sync, self.next_ready_after(t0), end)
            i0, i1 = np.searchsorted(arrivals, [t0, t1])
            stretch = self.serve(t0, arrivals[i0:i1], busy_s[i0:i1])
            cut = t1
            while autoscaler and k * self.bin_s <= t1 and k * self.bin_s < end:
                changed = self.sync(autoscaler, k * self.bin_s, k, stretch)
                k += 1
                if changed:
                    cut = (k - 1) * self.bin_s
                    break
            kept = int(np.searchsorted(arrivals[i0:i1], cut)) if cut < t1 else i1 - i0
            pod_ids[i0:i0 + kept], finish[i0:i0 + kept] = self.commit(stretch, kept)
            t0 = cut
        return pod_ids, finish

    def run_batch(self, arrivals, busy_s, policy: Batch, end):
        """Each request waits for the next run; each run starts its pods and drains the queue."""
        self.initial = policy.replicas
        runs = policy.run_at_s + np.ceil((arrivals - policy.run_at_s) / policy.period_s) * policy.period_s
        pod_ids = np.zeros(len(arrivals), dtype=np.int64)
        finish = np.zeros(len(arrivals))
        for run_s in np.unique(runs):
            i0, i1 = np.searchsorted(runs, [run_s, np.nextafter(run_s, np.inf)])
            first = len(self.names)
            start = run_s + self.startup_s
            self.add_pods(policy.replicas, run_s, start)
            queued = np.full(i1 - i0, start)
            pod_ids[i0:i1], finish[i0:i1] = self.commit(self.serve(start, queued, busy_s[i0:i1]), i1 - i0)
            for i in range(first, len(self.names)):
                self.ended[i] = float(self.last_finish[i])
            self.live = []
        return pod_ids, finish

    def sync(self, autoscaler: hpa.Autoscaler, now: float, k: int, stretch: _Stretch) -> bool:
        """One HPA sync: each pod's CPU over the last period, a decision, pods added or removed.

        Returns whether the replica count changed."""
        live = list(self.live)
        samples = []
        for i in live:
            ready = self.ready_at[i] <= now
            busy_s = self.busy[i, k - 1] + stretch.busy_in(i, k - 1)
            cpu = busy_s / self.bin_s * self.size.cpu_busy_cores if ready else 0.0
            samples.append(hpa.PodSample(self.names[i], ready, cpu, self.size.cpu_request_cores, self.ready_at[i]))
        decision = autoscaler.decide(now, len(live), samples)
        change = decision.desired_replicas - len(live)
        if change > 0:
            self.add_pods(change, now, now + self.startup_s)
        elif change < 0:
            self.remove_pods(-change, now)
        self.timeline.append({
            "t_s": now,
            "replicas": len(live),
            "ready": sum(s.ready for s in samples),
            "desired": decision.desired_replicas,
            "utilization_pct": decision.utilization_pct,
            "reason": decision.reason,
        })
        return change != 0

    # -- queues -------------------------------------------------------------------------------------

    def serve(self, t0: float, arrivals: np.ndarray, busy_s: np.ndarray) -> _Stretch:
        """Route a stretch of arrivals (all at or after t0, same Ready pods) and queue them."""
        targets = self.ready(t0)
        saved = (self.free_at[targets].copy(), self.rr, self.quota.save(targets) if self.quota else None)
        if self.concurrency == 1 and self.routing != "least-outstanding":
            pods = self._route_vector(targets, len(arrivals))
            finish = _fifo_finish(arrivals, busy_s, pods, self.free_at, t0, self.quota) if len(arrivals) else np.zeros(0)
        else:
            pods, finish = self._serve_one_by_one(targets, arrivals, busy_s)
        stretch = _Stretch(targets, pods, finish, busy_s, saved)
        stretch.t0, stretch.arrivals = t0, arrivals
        if self.busy is not None and len(pods):
            stretch.grid, stretch.low = _busy_grid(self.bin_s, self.busy.shape[1] - 1, targets, pods, finish - busy_s, finish)
        return stretch

    def commit(self, stretch: _Stretch, kept: int) -> tuple[np.ndarray, np.ndarray]:
        """Keep the stretch's first `kept` requests; undo the queueing of the rest (fast path only)."""
        pods, finish, busy_s = stretch.pods[:kept], stretch.finish[:kept], stretch.busy_s[:kept]
        if kept < len(stretch.pods):
            free, rr, quota = stretch.saved
            self.free_at[stretch.targets] = free
            if self.quota is None:
                np.maximum.at(self.free_at, pods, finish)  # a queue's last finish is its latest
            else:  # the quota left in each pod's last period: serve the kept requests again (same finishes)
                self.quota.restore(stretch.targets, quota)
                if kept:
                    _fifo_finish(stretch.arrivals[:kept], busy_s, pods, self.free_at, stretch.t0, self.quota)
            self.rr = (rr + kept) % len(stretch.targets)
            if len(pods):
                stretch.grid, stretch.low = _busy_grid(
                    self.bin_s, self.busy.shape[1] - 1, stretch.targets, pods, finish - busy_s, finish
                )
            else:
                stretch.grid = None
        self.used_s += np.bincount(pods, weights=busy_s, minlength=len(self.names))
        np.maximum.at(self.last_finish, pods, finish)
        if stretch.grid is not None:
            self.busy[stretch.targets[:, None], stretch.low + np.arange(stretch.grid.shape[1])] += stretch.grid
        return pods, finish

    def _route_vector(self, targets: np.ndarray, k: int) -> np.ndarray:
        if self.routing == "random":
            return targets[self.rng.integers(len(targets), size=k)]
        picks = targets[(self.rr + np.arange(k)) % len(targets)]
        self.rr = (self.rr + k) % len(targets)
        return picks

    def _serve_one_by_one(self, targets, arrivals, busy_s):
        """Several slots per pod, or least-outstanding routing: a heap of slot free times per pod."""
        least = self.routing == "least-outstanding"
        chosen = None if least else self._route_vector(targets, len(arrivals)).tolist()
        candidates = targets.tolist()
        pods, finish = [], []
        for j, (t, s) in enumerate(zip(arrivals.tolist(), busy_s.tolist())):
            p = min(candidates, key=lambda i: _outstanding(self.outstanding[i], t)) if least else chosen[j]
            slots = self.slots[p]
            start = max(t, slots[0])
            done = self.quota.serve_one(p, start, s) if self.quota else start + s
            heapq.heapreplace(slots, done)
            if least:
                heapq.heappush(self.outstanding[p], done)
            pods.append(p)
            finish.append(done)
        return np.array(pods, dtype=np.int64), np.array(finish)


def _outstanding(heap: list[float], now: float) -> int:
    """Requests a pod has not finished at `now` (drops the finished ones from its heap)."""
    while heap and heap[0] <= now:
        heapq.heappop(heap)
    return len(heap)


def _fifo_finish(arrivals, busy_s, pods, free_at, t0: float, quota: _Quota | None = None) -> np.ndarray:
    """Finish times of one-slot FIFO queues, all pods at once; updates `free_at` per pod.

    For one queue, finish_i = S_i + max(free, max over j <= i of (a_j - S_j-1)) where S is the
    running sum of service times: Lindley's recursion unrolled. Grouping the requests by pod and
    offsetting each group makes one cumulative maximum serve every pod. Times are taken relative to
    t0 to keep the offsets small. With a `quota`, the queues are then throttled (`_throttle`).
    """
    order = np.argsort(pods.astype(np.int32), kind="stable")
    p, a, s = pods[order], arrivals[order] - t0, busy_s[order]
    first = np.flatnonzero(np.concatenate(([True], p[1:] != p[:-1])))
    counts = np.diff(np.append(first, len(p)))
    groups = p[first]
    g = np.repeat(np.arange(len(groups)), counts)
    total = np.cumsum(s)
    before = (total - s)[first]  # service summed over earlier groups
    running = total - before[g]  # S_i within the group
    x = a - (running - s)
    offset = (x.max() - x.min() + 1.0) * g
    best = np.maximum.accumulate(x + offset) - offset
    done = running + np.maximum(best, (free_at[groups] - t0)[g]) + t0
    if quota is not None:
        _throttle(arrivals[order], s, done, g, first, counts, groups, free_at[groups], quota)
    free_at[groups] = done[first + counts - 1]
    finish = np.empty_like(done)
    finish[order] = done
    return finish


class _Quota:
    """CFS bandwidth control for one-slot pods: each period a pod may burn `budget` CPU-seconds.

    Per pod it keeps the period of its last work (`k`, in periods since 0) and the CPU-seconds used
    in that period so far (`used`): all a queue needs to carry from one stretch to the next.
    """

    def __init__(self, size: PodSize):
        self.period, self.inv = size.cfs_period_s, 1.0 / size.cfs_period_s
        self.rate = size.cpu_busy_cores  # CPU-seconds burnt per second of service
        self.budget = size.cpu_limit_cores * size.cfs_period_s
        self.k = np.zeros(0, dtype=np.int64)
        self.used = np.zeros(0)

    def add(self, count: int) -> None:
        self.k = np.concatenate((self.k, np.full(count, -1, dtype=np.int64)))
        self.used = np.concatenate((self.used, np.zeros(count)))

    def save(self, pods: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.k[pods].copy(), self.used[pods].copy()

    def restore(self, pods: np.ndarray, saved: tuple[np.ndarray, np.ndarray]) -> None:
        self.k[pods], self.used[pods] = saved

    def serve_one(self, pod: int, start: float, busy: float) -> float:
        """Serve one request on `pod` from `start`; returns when it finishes."""
        k, used = int(self.k[pod]), float(self.used[pod])
        if int(start * self.inv) > k:
            k, used = int(start * self.inv), 0.0
        t, self.k[pod], self.used[pod] = self.run(start, busy * self.rate, k, used)
        return t

    def run(self, t: float, need: float, k: int, used: float) -> tuple[float, int, float]:
        """Burn `need` CPU-seconds from `t`, in period `k` with `used` spent: (end, its period, used there).

        Full speed while the period has quota; once it is spent, nothing until the next period.
        """
        while True:
            end = (k + 1) * self.period
            run = min(need, self.budget - used, (end - t) * self.rate)
            if run > 0:
                t, used, need = t + run / self.rate, used + run, need - run
            if need <= 0:
                return t, k, used
            t, k, used = end, k + 1, 0.0


def _throttle(arrivals, s, done, g, first, counts, groups, free0, quota: _Quota) -> None:
    """Throttle one-slot FIFO queues solved without a quota (`done`, sorted by pod; fixed in place).

    Where no period of a pod's unthrottled schedule burns more than the quota, that schedule is
    exact, and that is most of a run below capacity: periods' usage is summed for all requests at
    once. From the start of the first period over quota, the pod's requests are served one at a
    time until one arrives in a later period than the last one's work (its queue empty, its quota
    fresh); from there the unthrottled schedule holds again, up to the next period over quota.
    `free0` is each pod's free time before this stretch; `quota.k/used` its quota so far.
    """
    P, r, budget = quota.period, quota.rate, quota.budget
    start = done - s
    ks = np.floor(start * quota.inv).astype(np.int64)
    kf = np.maximum(np.ceil(done * quota.inv).astype(np.int64) - 1, ks)  # a finish on a boundary: the earlier period
    one = kf == ks
    # CPU per (pod, period): each request's part in its first and its last period, in queue order.
    keys = np.empty(2 * len(s), dtype=np.int64)
    keys[0::2], keys[1::2] = ks, kf
    pods2 = np.repeat(g, 2)
    cpu = np.empty(2 * len(s))
    cpu[0::2] = np.where(one, s, (ks + 1) * P - start) * r
    cpu[1::2] = np.where(one, 0.0, done - kf * P) * r
    new = np.ones(len(keys), dtype=bool)
    new[1:] = (keys[1:] != keys[:-1]) | (pods2[1:] != pods2[:-1])
    runs = np.flatnonzero(new)
    run_pod, run_k = pods2[runs], keys[runs]
    k0, u0 = quota.k[groups], quota.used[groups]
    usage = np.add.reduceat(cpu, runs) + np.where(run_k == k0[run_pod], u0[run_pod], 0.0)
    # Each pod's quota after its last request, if nothing below changes it.
    last_run = np.searchsorted(run_pod, np.arange(len(groups)), side="right") - 1
    quota.k[groups], quota.used[groups] = run_k[last_run], usage[last_run]
    over = usage > budget * (1 + 1e-9)
    spans = kf - ks >= 2  # busy through a whole period at more than the limit: over by construction
    bad_pod = np.concatenate((run_pod[over], g[spans]))
    bad_k = np.concatenate((run_k[over], ks[spans] + 1))
    if not len(bad_pod):
        return
    order = np.lexsort((bad_k, bad_pod))
    bad_pod, bad_k = bad_pod[order], bad_k[order]
    edges = np.flatnonzero(np.concatenate(([True], bad_pod[1:] != bad_pod[:-1], [True])))
    for lo, hi in itertools.pairwise(edges):
        i = bad_pod[lo]
        a, b = first[i], first[i] + counts[i]
        end = _throttled_queue(arrivals[a:b], s[a:b], done[a:b], np.unique(bad_k[lo:hi]).tolist(),
                               free0[i], int(k0[i]), float(u0[i]), quota)
        if end is not None:
            quota.k[groups[i]], quota.used[groups[i]] = end


def _throttled_queue(arrivals, busy, done, over: list[int], free0: float, k0: int, u0: float, quota: _Quota):
    """One pod's queue, throttled from each period in `over` until it is back on its unthrottled
    schedule; `done` (unthrottled on entry) is fixed in place. Returns the quota state (k, used)
    after the last request if that one was served here, else None."""
    unthrottled = done.copy()
    P, inv, r, budget = quota.period, quota.inv, quota.rate, quota.budget
    n, i, v = len(arrivals), 0, 0
    while v < len(over):
        if i == 0 and over[v] <= k0:  # the period the last stretch left part-used: from the first request
            j, t, k, used, rest = 0, free0, k0, u0, None
        else:  # from the period's start: nothing before it changes
            k = over[v]
            t, used = k * P, 0.0
            j = i + int(np.searchsorted(unthrottled[i:], t, side="right"))  # the first not finished by then
            rest = unthrottled[j] - t if unthrottled[j] - busy[j] < t else None
        fresh = rest is None  # its first request is served here whatever; after it, only until the queue is idle
        if rest is not None:  # under way at the period's start: the rest of it
            t, k, used = quota.run(t, rest * r, k, used)
            done[j] = t
            j += 1
        chunk = 16
        while j < n:  # Python floats in growing chunks: an episode is usually a few periods long
            a, s = arrivals[j:j + chunk].tolist(), busy[j:j + chunk].tolist()
            served = []
            for begin, dur in zip(a, s):
                if not fresh and begin >= (k + 1) * P:  # an arrival in a fresh period, queue idle
                    break
                fresh = False
                if begin < t:
                    begin = t
                elif int(begin * inv) > k:
                    k, used = int(begin * inv), 0.0
                if used + dur * r <= budget and begin + dur <= (k + 1) * P:
                    t, used = begin + dur, used + dur * r
                else:
                    t, k, used = quota.run(begin, dur * r, k, used)
                served.append(t)
            done[j:j + len(served)] = served
            j += len(served)
            if len(served) < len(a):
                break
            chunk *= 4
        if j >= n:
            return k, used
        i = j
        v = bisect.bisect_left(over, int(arrivals[j] * inv), v)
    return None


def _busy_grid(bin_s: float, last: int, targets: np.ndarray, pods, start, finish) -> tuple[np.ndarray, int]:
    """Seconds of service per pod per sync bin: a grid over (targets, bins low..) and its first bin.

    Bins past `last` fold into it (they lie beyond the run and only add to a total).
    """
    b0 = np.minimum((start // bin_s).astype(np.int64), last)
    b1 = np.minimum((finish // bin_s).astype(np.int64), last)
    edge = (b0 + 1) * bin_s  # the bin edge a request crosses, if it crosses one
    crosses = b1 > b0
    rows = np.searchsorted(targets, pods)  # targets are pod ids in creation order, so sorted
    low, span = int(b0.min()), int(b1.max() - b0.min() + 1)
    cells = np.concatenate((rows * span + b0 - low, rows * span + b1 - low))
    seconds = np.concatenate((np.minimum(finish, edge) - start, np.where(crosses, finish - edge, 0.0)))
    grid = np.bincount(cells, weights=seconds, minlength=len(targets) * span).reshape(len(targets), span)
    wide = b1 > b0 + 1  # longer than a bin: the second part above also counted the middle bins
    for row, lo, hi in zip(rows[wide], b0[wide] - low, b1[wide] - low):
        grid[row, lo + 1:hi] += bin_s
        grid[row, hi] -= (hi - lo - 1) * bin_s
    return grid, low


class _Stretch:
    """Requests routed and queued between two events, not yet committed to the pods' totals."""

    def __init__(self, targets, pods, finish, busy_s, saved):
        self.targets, self.pods, self.finish, self.busy_s, self.saved = targets, pods, finish, busy_s, saved
        self.grid: np.ndarray | None = None
        self.low = 0
        self._rows = {int(p): r for r, p in enumerate(targets)}

    def busy_in(self, pod: int, column: int) -> float:
        """This stretch's service seconds on `pod` in sync bin `column`."""
        row = self._rows.get(pod)
        if self.grid is None or row is None or not 0 <= column - self.low < self.grid.shape[1]:
            return 0.0
        return float(self.grid[row, column - self.low])
