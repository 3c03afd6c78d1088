"""How much traffic one pod of a lab's model serves on *this* machine, measured before a lab sizes anything.

Machines differ by three times and more per request, and by privilege (whether a pod's CPU limit is
held, and how). A lab that offers "250 req/s" tests the machine it was written on: on a faster one
the pod never saturates and the HPA never scales; on a slower one everything fails. So a lab first
measures one pod of its model under the manifest's CPU limit, then expresses every rate as a multiple
of that capacity (`lab.capacity(...)` in its parameters cell).

The measurement (about 15 s in full mode, 5 s in quick mode):
1. one pod from the lesson's Deployment, serving the lab's model, behind the Service;
2. a closed loop of a few users keeps it busy: its CPU counter over that run gives the CPU one
   request costs under load, so `limit / CPU per request` is the most it could serve (the CPU
   bound; or what the closed loop served, if less: one server process uses one core at most);
3. open-loop steps with random (Poisson) arrivals, as real users arrive, from 0.6 of that bound
   upwards by x1.25 until one misses the SLO (p95 over it, or any failure), or downwards by x0.7
   while they miss it; then a step or two at the geometric middle of the last rate that met the SLO
   and the first that missed it. The capacity is the highest rate that met the SLO.
It also measures what a request costs this machine in all: the pod, the Service's forwarding and
the load generator, each from its own CPU counter (not the machine's busy time, which other
programs share). That says how much traffic this machine can push at all, and so how many pods an
experiment can usefully compare.

The result is cached per process (a Jupyter kernel): a lab run again reuses it unless asked. A test
run that executes several labs in a row on one machine setting may also share it between kernels
through a file named by $SERVELAB_CALIBRATION_FILE; a reused measurement says so where it is printed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import io
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd

from servelab.backends.local.node import allocatable

if TYPE_CHECKING:
    from servelab.backends.base import Cluster

FIRST_FRACTION = 0.6  # of the CPU bound: the first open-loop step
STEP_UP, STEP_DOWN = 1.25, 0.7
MAX_STEPS = 8
MIN_REQUESTS = 200  # per step: a p95 of fewer is a few requests' luck (a slow machine's steps last longer)
CLOSED_USERS = 4
MACHINE_HEADROOM = 0.85  # of the usable cores an experiment may plan to use; the rest is the notebook's
SHARED_VARIABLE = "SERVELAB_CALIBRATION_FILE"
_cache: dict[tuple, Capacity] = {}


@dataclass(frozen=True)
class Sizes:
    """How long each calibration run lasts (seconds)."""

    warm_s: float
    closed_s: float
    step_s: float
    refine: int  # steps spent narrowing the bracket once the SLO is crossed

    @classmethod
    def for_mode(cls, quick: bool) -> Sizes:
        if quick:
            return cls(warm_s=0.5, closed_s=1.0, step_s=1.0, refine=1)
        return cls(warm_s=1.0, closed_s=1.5, step_s=1.5, refine=2)


@dataclass(frozen=True)
class Capacity:
    """One pod's measured capacity on this machine, and what a request costs the whole machine.

    `rate` is the unit every lab's rates are multiples of: the highest Poisson rate one pod served
    with p95 within `slo_ms` and no failure.
    """

    model: str
    slo_ms: float
    rate: float  # requests/s one pod served within the SLO
    cpu_ms: float  # pod CPU per request at the highest step that met the SLO (ms of one core)
    machine_cpu_ms: float  # pod + Service + load generator CPU per request, at that same step
    cpu_limit: float | None  # the pod's CPU limit (cores) as the backend ran it
    cpu_request: float  # the pod's CPU request (cores): what a scheduler places it by
    limits: str | bool  # how the limit was held ("cgroup-v1", "userspace", ...), or False
    limits_note: str
    cores: float  # this machine's usable cores, as the local cluster's node counts them
    backend: str
    seconds: float  # how long the calibration took
    steps: pd.DataFrame = field(repr=False, compare=False)  # one row per open-loop step
    reused_from: str = ""  # the file an earlier kernel saved this measurement in ($SERVELAB_CALIBRATION_FILE)

    @property
    def cpu_bound(self) -> float:
        """Requests/s the pod's CPU limit allows at the measured CPU per request."""
        return (self.cpu_limit or 1.0) / (self.cpu_ms / 1000)

    @property
    def machine_rate(self) -> float:
        """Requests/s this machine can push through pods, Service and load generator together,
        leaving `MACHINE_HEADROOM`'s complement of the cores to the notebook and the rest."""
        return MACHINE_HEADROOM * self.cores / (self.machine_cpu_ms / 1000)

    def rates(self, multiples: Iterable[float]) -> list[float]:
        """Requests/s for multiples of the capacity, rounded to whole requests per second."""
        return [max(1.0, float(round(m * self.rate))) for m in multiples]

    def __str__(self) -> str:
        held = self.limits if self.limits else f"NOT held: {self.limits_note}"
        limit = f"{self.cpu_limit:.3g} CPU" if self.cpu_limit else "no CPU limit"
        return (f"one {self.model} pod ({limit}, limit {held}) serves {self.rate:.0f} req/s within p95 <= "
                f"{self.slo_ms:g} ms; {self.cpu_ms:.2f} ms of pod CPU and {self.machine_cpu_ms:.2f} ms of this "
                f"machine's CPU per request; {self.cores:g} usable cores [{self.backend} backend, measured in "
                f"{self.seconds:.0f} s" + (f" by an earlier notebook, read from {self.reused_from}]" if self.reused_from else "]"))

    def to_dict(self) -> dict:
        """For a run's metadata: the capacity every rate of the run was a multiple of."""
        return {"model": self.model, "slo_ms": self.slo_ms, "rate": self.rate, "cpu_ms": self.cpu_ms,
                "machine_cpu_ms": self.machine_cpu_ms, "cpu_limit": self.cpu_limit, "cpu_request": self.cpu_request, "limits": self.limits,
                "cores": self.cores, "backend": self.backend}


def calibrate(model: str, slo_ms: float, *, quick: bool, again: bool = False, progress: bool = True) -> Capacity:
    """One pod's capacity for `model` within `slo_ms` on this machine: measured once per process.

    `again=True` measures anew (another program started, the laptop was plugged in).
    """
    from servelab.backends.local.pod_size import cpu_scale

    key = (os.environ.get("SERVELAB_BACKEND", "auto"), model, float(slo_ms), quick, cpu_scale(),
           os.environ.get("SERVELAB_LIMITS", ""))
    if again or key not in _cache:
        shared = None if again else _shared(key)
        _cache[key] = shared or measure(model, slo_ms, quick=quick, progress=progress)
        if shared is None:
            _share(key, _cache[key])
    return _cache[key]


def _shared(key: tuple) -> Capacity | None:
    """The measurement an earlier kernel saved under `key` in $SERVELAB_CALIBRATION_FILE, if any."""
    path = os.environ.get(SHARED_VARIABLE)
    if not path or not os.path.exists(path):
        return None
    with open(path) as file:
        fcntl.flock(file, fcntl.LOCK_SH)
        saved = json.load(file).get(repr(key))
    if saved is None:
        return None
    return Capacity(**{**saved, "steps": pd.DataFrame(saved["steps"]), "reused_from": path})


def _share(key: tuple, capacity: Capacity) -> None:
    """Save `capacity` under `key` in $SERVELAB_CALIBRATION_FILE, for the next kernel (a test run's next lab)."""
    path = os.environ.get(SHARED_VARIABLE)
    if not path:
        return
    with open(path, "a+") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        file.seek(0)
        table = json.loads(file.read() or "{}")
        fields = {f.name: getattr(capacity, f.name) for f in dataclasses.fields(capacity)}
        table[repr(key)] = {**fields, "steps": capacity.steps.to_dict(orient="list"), "reused_from": ""}
        file.seek(0)
        file.truncate()
        json.dump(table, file, default=lambda value: value.item())  # numpy scalars


def measure(model: str, slo_ms: float, *, quick: bool, progress: bool = True) -> Capacity:
    """Start one pod of `model` from the lesson's manifests on the chosen backend and measure it."""
    from servelab.backends import connect
    from servelab.core.manifests import deployment, service

    sizes = Sizes.for_mode(quick)
    started = time.monotonic()
    with contextlib.redirect_stdout(io.StringIO()):  # the lab's own connect() says which backend
        cluster = connect(service_port=0)
    try:
        cluster.apply([deployment(model=model, replicas=1), service()])
        cluster.wait_ready("model-serving-deployment", replicas=1, timeout=120)
        capacity = _probe(cluster, cluster.service_url(), model, slo_ms, sizes, progress)
    finally:
        if cluster.backend == "local":
            cluster.close()
    return dataclasses.replace(capacity, seconds=time.monotonic() - started)


def _probe(cluster: Cluster, url: str, model: str, slo_ms: float, sizes: Sizes, progress: bool) -> Capacity:
    from servelab import load

    load.run(url, load.Constant(20, sizes.warm_s), progress=False)  # a new pod's first answers are slow
    before = _pod_cpu_s(cluster)
    closed = load.run_closed(url, users=CLOSED_USERS, duration=sizes.closed_s, progress=False)
    cpu_ms = 1000 * (_pod_cpu_s(cluster) - before) / max(1, closed.summary()["ok"])
    meta = cluster.run_metadata()
    limit = meta.get("cpu_limit_cores")
    # The CPU limit's bound, or what the closed loop got out of the pod if less (a single-threaded
    # server uses one core at most, whatever its limit).
    served = closed.summary()["achieved_rate"]
    bound = min((limit or 1.0) / (cpu_ms / 1000), served) if cpu_ms > 0 else served
    steps = _steps(cluster, url, bound, slo_ms, sizes, progress)
    met = steps[steps.met]
    if met.empty:
        raise RuntimeError(
            f"one {model} pod met p95 <= {slo_ms:g} ms at none of the rates tried (down to "
            f"{steps.rate.min():.1f} req/s): this machine is too busy or too slow for this lab's SLO. "
            f"Close other programs and run the parameters cell again. Steps:\n{steps.to_string()}")
    best = met.loc[met.rate.idxmax()]
    return Capacity(
        model=model, slo_ms=slo_ms, rate=float(best.rate), cpu_ms=float(best.pod_cpu_ms),
        machine_cpu_ms=float(best.pod_cpu_ms + best.service_cpu_ms + best.generator_cpu_ms),
        cpu_limit=limit, cpu_request=meta.get("cpu_request_cores") or limit or 0.0, limits=meta.get("limits_enforced", False), limits_note=meta.get("limits_note", ""),
        cores=allocatable().cpu_cores, backend=cluster.backend, seconds=0.0, steps=steps)


def _steps(cluster: Cluster, url: str, bound: float, slo_ms: float, sizes: Sizes, progress: bool) -> pd.DataFrame:
    """Open-loop Poisson steps until the SLO is bracketed (up by STEP_UP while steps meet it, down by
    STEP_DOWN while they miss it), then `sizes.refine` steps at the geometric middle of the bracket."""
    from servelab.core import progress as progress_bars

    rows: list[dict] = []
    bar = progress_bars.bar(progress, desc="calibrating", leave=False, bar_format="{desc}: step {n_fmt} {postfix}")
    try:
        rate, refined = FIRST_FRACTION * bound, 0
        while len(rows) < MAX_STEPS and refined <= sizes.refine:
            bar.set_postfix_str(f"{rate:.0f} req/s")
            rows.append(_step(cluster, url, rate, slo_ms, max(sizes.step_s, MIN_REQUESTS / rate), seed=len(rows)))
            bar.update()
            met = [r["rate"] for r in rows if r["met"]]
            missed = [r["rate"] for r in rows if not r["met"]]
            if met and missed and min(missed) > max(met):
                refined += 1
                rate = (max(met) * min(missed)) ** 0.5
            else:
                rate *= STEP_UP if rows[-1]["met"] else STEP_DOWN
    finally:
        bar.close()
    return pd.DataFrame(rows)


def _step(cluster: Cluster, url: str, rate: float, slo_ms: float, seconds: float, seed: int) -> dict:
    """One open-loop Poisson step at `rate`: its p95 and failures, and what a request cost each process."""
    from servelab import load

    cluster.wait_idle()  # a missed step's backlog must not land in this one
    pod_before, service_before = _pod_cpu_s(cluster), cluster.service_cpu_s() or 0.0
    run = load.run(url, load.Poisson(rate, seconds), progress=False, seed=seed)
    summary = run.summary()
    per_request = 1000 / max(1, summary["ok"])
    return {"rate": rate, "p95": summary["p95"], "errors": summary["errors"], "ok": summary["ok"],
            "met": bool(summary["errors"] == 0 and summary["p95"] <= slo_ms),
            "pod_cpu_ms": (_pod_cpu_s(cluster) - pod_before) * per_request,
            "service_cpu_ms": ((cluster.service_cpu_s() or 0.0) - service_before) * per_request,
            "generator_cpu_ms": summary["client_cpu"] * run.duration_s * per_request}


def _pod_cpu_s(cluster: Cluster) -> float:
    """CPU seconds all pods have used so far, read now (the counters the HPA and cost read)."""
    return sum(pod.cpu_used_core_s or 0.0 for pod in cluster.pods())

