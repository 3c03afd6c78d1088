"""What a request costs a pod: service times measured on a live run, and the pod they ran on."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from servelab.core.result import Result

if TYPE_CHECKING:
    from numpy.typing import ArrayLike


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
    def empirical(cls, values_s: ArrayLike, source: str = "given array", busy_s: ArrayLike | None = None,
                  pod: PodSize | None = None) -> ServiceTimes:
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
