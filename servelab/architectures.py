"""Serving architectures compared over one simulated day: latency against an SLO, and dollars.

An architecture here is how a day's requests are served: a fixed number of pods, the HPA, or the
HPA for the requests that need an answer now plus a nightly batch job for the share that can
wait, any of them in a far region (a network round trip added to every answer), or the model on
each user's device. `simulate_day` runs each through `servelab.sim` on the same arrivals and keeps
only what a decision needs (a row of figures, p95 and pods per time window), so a 24-hour day of
millions of requests fits in memory several times over. `compare_live` puts a live run beside the
simulator's prediction of it.

The simulator has no devices: an edge architecture resamples a measured device run's answer times
(every user has a device of their own, so nothing queues) and pays for the devices by the
amortisation rule of servelab.core.cost.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import psutil

from servelab import sim
from servelab.core import cost, hpa
from servelab.core import progress as progress_bars
from servelab.core.result import Result, percentile, percentile_per_window
from servelab.core.schedules import Random, Schedule

if TYPE_CHECKING:
    from servelab.analysis.calibration import Capacity
    from servelab.backends.base import Cluster

DAY_S = 86400.0
NIGHTLY_RUN_AT_H = 2.0  # the batch job runs at 02:00, when traffic is near its trough
PEAK_HOUR = "peak-hour p95 (ms)"
PER_DAY = "$ per day"
# Peak memory of simulate_day per simulated request: 2.1 GB RSS for a 7.1M-request day, measured.
BYTES_PER_REQUEST = 300


def day_that_fits(day_s: float, mean_rate: float, available_bytes: int | None = None) -> float:
    """The day length (s) to simulate: `day_s`, or a compressed day when simulating `day_s` at
    `mean_rate` would need more than half of this machine's free memory.

    A full day at one pod's capacity is ten million requests or more, about 3 GB to simulate; a
    small JupyterHub server has less. A compressed day keeps the traffic's shape and its dollars
    (scaled to 24 h) with fewer requests, and says so, instead of the kernel dying mid-cell.
    """
    available = psutil.virtual_memory().available if available_bytes is None else available_bytes
    need = day_s * mean_rate * BYTES_PER_REQUEST
    if need <= available / 2:
        return day_s
    shorter = max(600.0, float(np.floor(day_s * available / 2 / need / 600) * 600))
    print(f"simulating {day_s:g} s at {mean_rate:.0f} req/s would need about {need / 2**30:.1f} GiB and "
          f"{available / 2**30:.1f} GiB is free: the day is compressed into {shorter:g} s instead")
    return shorter


@dataclass(frozen=True)
class OnDevice:
    """Predictions on each user's own device: answer times (s) of a measured device run, resampled,
    and the device's price per 1M predictions (`cost.Device.per_million`)."""

    latency_s: np.ndarray = field(compare=False)
    per_million: float


@dataclass(frozen=True)
class Architecture:
    """One way to serve the day: `policy` for the requests that need an answer now, and, if
    `deferred_share` > 0, a `batch` job for that share of requests, which can wait for it.
    `round_trip_ms` (+- `jitter_ms`, uniform) is added to every answer: the network to a far region.
    With `device`, the model runs on the users' devices instead and `policy` is None."""

    name: str
    policy: sim.Static | sim.Autoscaled | None
    deferred_share: float = 0.0
    batch: sim.Batch | None = None
    round_trip_ms: float = 0.0
    jitter_ms: float = 0.0
    device: OnDevice | None = None

    def __post_init__(self) -> None:
        if (self.policy is None) == (self.device is None):
            raise ValueError(f"{self.name}: an architecture serves from pods (a policy) or on devices, one of the two")
        if not 0 <= self.jitter_ms <= self.round_trip_ms:
            raise ValueError(f"{self.name}: a round trip of R +- J needs 0 <= J <= R; got {self.round_trip_ms} +- {self.jitter_ms}")
        if not 0 <= self.deferred_share < 1:
            raise ValueError(f"{self.name}: deferred_share is a share of requests, 0 <= share < 1; got {self.deferred_share}")
        if (self.deferred_share > 0) != (self.batch is not None):
            raise ValueError(f"{self.name}: a deferred share needs a batch job, and a batch job a deferred share")


def candidates(hpa_manifest: str | Path, *, static: tuple[int, ...] = (1, 2, 3, 4), deferred_share: float = 0.3,
               period_s: float = DAY_S, far: tuple[float, float] | None = None,
               device: OnDevice | None = None) -> list[Architecture]:
    """The architectures a team would put on the table: static counts, the HPA of `hpa_manifest`,
    and that HPA with `deferred_share` of the requests moved to a nightly batch job of one pod; with
    `far` = (round trip, jitter) in ms, the HPA in a far region; with `device`, the model on the users' devices.

    `period_s` is the length of the day (shorter for a compressed day): the job runs at 02:00 of it.
    """
    autoscaled = sim.Autoscaled.from_manifest(hpa_manifest)
    spec = autoscaled.spec
    hpa_name = f"HPA, {spec.min_replicas} to {spec.max_replicas} pods"
    nightly = sim.Batch(replicas=1, period_s=period_s, run_at_s=NIGHTLY_RUN_AT_H / 24 * period_s)
    return [
        *(Architecture(f"static, {n} pod{'s' * (n > 1)}", sim.Static(n)) for n in static),
        Architecture(hpa_name, autoscaled),
        Architecture(f"HPA + nightly batch ({deferred_share:.0%})", autoscaled, deferred_share, nightly),
        *([Architecture(f"{hpa_name}, far region (+{far[0]:g} ms)", autoscaled, round_trip_ms=far[0], jitter_ms=far[1])]
          if far else []),
        *([Architecture("edge (on each user's device)", None, device=device)] if device is not None else []),
    ]


def autoscaled(hpa_manifest: dict, sync_period_s: float) -> sim.Autoscaled:
    """The simulator's HPA policy from a manifest dict (as applied to a cluster) and a sync period."""
    return sim.Autoscaled(hpa.HPASpec.from_manifest(hpa_manifest), sync_period_s=sync_period_s)


def calibration_table(moderate: Result, capacity: Capacity, service: sim.ServiceTimes, startup_s: float) -> pd.Series:
    """What the simulator learned from the live calibration, beside one pod's capacity as this machine's
    calibration measured it (`servelab.analysis.calibration.Capacity`): the two capacities come from
    different measurements, and a reader should see both."""
    pod = service.pod or sim.PodSize()
    summary = moderate.summary()
    limit = f"{pod.cpu_limit_cores:g}" if pod.cpu_limit_cores else (pod.note or "none")
    return pd.Series({
        "calibration rate (req/s)": round(summary["offered_rate"], 1),
        "answer time p50 / p95 (ms)": f"{summary['p50']:.2f} / {summary['p95']:.2f}",
        "CPU per request (ms of one core)": round(float(service.busy_s.mean()) * pod.cpu_busy_cores * 1000, 3),
        "CPU limit modelled (cores)": limit,
        f"one pod's capacity within p95 <= {capacity.slo_ms:g} ms, measured (req/s)": round(capacity.rate, 1),
        "one pod's capacity, as the simulator derives it (req/s)": round(sim.capacity_rps(service), 1),
        "pod start-up, created to Ready (s)": round(startup_s, 2),
    }, name="calibration")


def random_arrivals(schedule: Schedule, seed: int = 0) -> np.ndarray:
    """Arrival times of many independent users following `schedule`'s rate curve (sorted, seconds)."""
    return Random(schedule, seed=seed).send_times()


def pods_over_time(result: Result, window_s: float, duration_s: float | None = None,
                   origin_s: float | None = None) -> pd.Series:
    """Mean pods alive (hence paid for) in each window of a run, from its `meta["pods"]`.

    `origin_s` is the run's start on its pods' clock: 0 for a simulation. None takes the earliest
    pod start, which is a live run's start to within a second (the cluster reports its pods
    clipped to the run), but not a batch job's, whose first pod starts when the job does.
    """
    pods = result.meta["pods"]
    origin = min(p["start_s"] for p in pods) if origin_s is None else origin_s
    end = duration_s or max(p["end_s"] for p in pods) - origin
    edges = np.arange(0.0, end + window_s, window_s)
    alive = np.zeros(len(edges) - 1)
    for pod in pods:
        start, stop = pod["start_s"] - origin, pod["end_s"] - origin
        alive += np.clip(np.minimum(edges[1:], stop) - np.maximum(edges[:-1], start), 0.0, None)
    return pd.Series(alive / window_s, index=edges[:-1], name="pods")


def p95_over_time(result: Result, window_s: float, duration_s: float) -> pd.Series:
    """p95 latency (ms) of the successful requests due in each window; NaN where none was."""
    frame = result.frame[result.ok]
    windows = int(np.ceil(duration_s / window_s))
    return percentile_per_window(frame["intended_s"], frame["latency_s"] * 1000, window_s, 95, windows).rename("p95_ms")


@dataclass
class Day:
    """What `simulate_day` kept: one row per architecture, and its p95 and pods per window."""

    table: pd.DataFrame
    p95_ms: pd.DataFrame  # index: window start (s); one column per architecture
    pods: pd.DataFrame  # mean pods alive per window, same shape
    rate: pd.Series  # offered requests/s at each window's middle
    slo_ms: float
    peak: tuple[float, float]
    requests: int
    duration_s: float
    notes: list[str] = field(default_factory=list)


def simulate_day(
    schedule: Schedule,
    service: sim.ServiceTimes,
    architectures: list[Architecture],
    *,
    slo_ms: float,
    price: cost.Price,
    startup_s: float,
    pod: sim.PodSize | None = None,
    window_s: float = 900.0,
    seed: int = 0,
    progress: bool = True,
) -> Day:
    """Serve one day of `schedule` with each architecture, on the same random arrivals.

    Latency figures cover the requests that need an answer now (the deferred share is answered
    by the batch job hours later, by design); "the peak hour" is the hour of the day with the
    most traffic. Dollars are the day's pods under `cost` (the OpenCost rule), batch runs
    included, scaled to 24 hours when the day is compressed. A full day takes about a minute, so
    `progress` shows a bar naming the architecture being simulated.
    """
    arrivals = random_arrivals(schedule, seed)
    duration = schedule.duration
    peak = _peak_hour(schedule)
    rows, p95s, pods = {}, {}, {}
    began = time.perf_counter()
    bar = progress_bars.bar(progress, total=len(architectures), unit="architecture", leave=True,
                            bar_format="simulating {desc}: {n_fmt}/{total_fmt} architectures [{elapsed}<{remaining}]")
    for arch in architectures:
        started = time.perf_counter()
        bar.set_description_str(arch.name)
        serve = _on_devices if arch.device is not None else _on_pods
        rows[arch.name], p95s[arch.name], pods[arch.name] = serve(
            arch, arrivals, duration, peak, slo_ms=slo_ms, price=price, startup_s=startup_s, pod=pod,
            window_s=window_s, seed=seed, service=service)
        rows[arch.name]["sim (s)"] = time.perf_counter() - started
        bar.update()
    progress_bars.finish(bar, f"simulated {len(architectures)} architectures over {_length(duration)} "
                              f"({len(arrivals):,} requests) in {time.perf_counter() - began:.0f} s")
    middles = p95s[architectures[0].name].index + window_s / 2
    notes = [] if duration == DAY_S else [f"the day is compressed into {duration:g} s; dollars are scaled to 24 h"]
    return Day(pd.DataFrame(rows).T, pd.DataFrame(p95s), pd.DataFrame(pods),
               pd.Series(schedule.rate_at(middles), index=middles - window_s / 2, name="req/s"),
               slo_ms, peak, len(arrivals), duration, notes)


def _length(seconds: float) -> str:
    """A day's length as the lab states it: '24 h', or seconds for a day compressed below an hour."""
    return f"{seconds / 3600:g} h" if seconds >= 3600 else f"{seconds:g} s"


def _on_pods(arch: Architecture, arrivals: np.ndarray, duration: float, peak: tuple[float, float], *, slo_ms: float,
             price: cost.Price, startup_s: float, pod: sim.PodSize | None, window_s: float, seed: int,
             service: sim.ServiceTimes) -> tuple[dict, pd.Series, pd.Series]:
    """One architecture's simulated day on pods: its row, its p95 and its pods per window."""
    deferred = np.random.default_rng(seed + 1).random(len(arrivals)) < arch.deferred_share
    online = sim.simulate(arrivals[~deferred], service, policy=arch.policy, startup_s=startup_s, pod=pod, seed=seed)
    if arch.round_trip_ms:
        spread = np.random.default_rng(seed + 2).uniform(-arch.jitter_ms, arch.jitter_ms, len(online.frame))
        online.frame["latency_s"] += (arch.round_trip_ms + spread) / 1000
    runs = [online]
    if arch.batch is not None:
        runs.append(sim.simulate(arrivals[deferred], service, policy=arch.batch, startup_s=startup_s, pod=pod, seed=seed))
    pods = sum(pods_over_time(r, window_s, duration, origin_s=0.0) for r in runs)
    return _day_row(runs, duration, peak, slo_ms, price), p95_over_time(online, window_s, duration), pods


def _on_devices(arch: Architecture, arrivals: np.ndarray, duration: float, peak: tuple[float, float], *,
                slo_ms: float, window_s: float, seed: int, **_: object) -> tuple[dict, pd.Series, pd.Series]:
    """The day on the users' devices: each answer time drawn from the measured device run, no pods,
    and every prediction paying its share of a device."""
    latency_ms = np.random.default_rng(seed + 3).choice(arch.device.latency_s, len(arrivals)) * 1000
    windows = int(np.ceil(duration / window_s))
    p95 = percentile_per_window(pd.Series(arrivals), pd.Series(latency_ms), window_s, 95, windows).rename("p95_ms")
    in_peak = latency_ms[(arrivals >= peak[0]) & (arrivals < peak[1])]
    dollars = arch.device.per_million * len(arrivals) / 1e6
    row = {"p95 (ms)": percentile(latency_ms, 95), PEAK_HOUR: percentile(in_peak, 95),
           f"over {slo_ms:g} ms (%)": float(100 * np.mean(latency_ms > slo_ms)), "mean pods": 0.0,
           PER_DAY: dollars / duration * DAY_S, "$ per 1M": arch.device.per_million, "idle share": np.nan,
           "batch wait (h)": np.nan}
    return row, p95, pd.Series(0.0, index=p95.index, name="pods")


def _peak_hour(schedule: Schedule) -> tuple[float, float]:
    """The 24th of the day (an hour, unless the day is compressed) that offers the most requests."""
    t = np.linspace(0.0, schedule.duration, 2400, endpoint=False)
    per_hour = np.convolve(schedule.rate_at(t), np.ones(100), "valid")  # 100 grid points = 1/24 of the day
    start = float(t[int(np.argmax(per_hour))])
    return start, start + schedule.duration / 24


def _day_row(runs: list[Result], duration: float, peak: tuple[float, float], slo_ms: float, price: cost.Price) -> dict:
    """The decision's figures for one architecture: its online run first, then its batch run if any."""
    online = runs[0]
    latency_ms = online.frame["latency_s"].to_numpy() * 1000
    intended = online.frame["intended_s"].to_numpy()
    in_peak = latency_ms[(intended >= peak[0]) & (intended < peak[1])]
    reports = [cost.cost_of_result(r, price) for r in runs]
    dollars = sum(r.dollars for r in reports)
    idle = sum(r.dollars * (r.idle_share or 0.0) for r in reports)
    predictions = sum(r.predictions_ok for r in reports)
    pod_s = sum(p["end_s"] - p["start_s"] for r in runs for p in r.meta["pods"])
    deferred = runs[1].frame["latency_s"].max() / duration * 24 if len(runs) > 1 and len(runs[1].frame) else np.nan
    return {
        "p95 (ms)": percentile(latency_ms, 95),
        PEAK_HOUR: percentile(in_peak, 95),
        f"over {slo_ms:g} ms (%)": float(100 * np.mean(latency_ms > slo_ms)),
        "mean pods": pod_s / duration,
        PER_DAY: dollars / duration * DAY_S,
        "$ per 1M": dollars / predictions * 1e6,
        "idle share": idle / dollars,
        "batch wait (h)": deferred,
    }


@dataclass(frozen=True)
class LivePlan:
    """What a live check runs for a choice: the policy of its online part, and the share of the
    day's requests that part serves (a batch job's share would wait for the night; it is not run live)."""

    policy: sim.Static | sim.Autoscaled
    online_share: float


def live_plan(architecture: Architecture | None, hpa_manifest: dict, sync_period_s: float) -> LivePlan:
    """A static choice as it is; an autoscaled one (or no choice: the HPA is then the one to check)
    with the HPA of `hpa_manifest` at `sync_period_s`, the shortened windows a lab-length run needs."""
    if architecture is not None and isinstance(architecture.policy, sim.Static):
        return LivePlan(architecture.policy, 1.0)
    share = 1.0 - (architecture.deferred_share if architecture is not None else 0.0)
    return LivePlan(autoscaled(hpa_manifest, sync_period_s), share)


def compare_live(live: Result, predicted: Result, price: cost.Price, slo_ms: float) -> pd.DataFrame:
    """Measured against predicted for the same schedule: p50/p95/p99, share over the SLO, failures,
    mean pods, dollars and $ per 1M, with the prediction's error in % of the measured figure."""
    rows = {}
    for name, run in (("measured", live), ("predicted", predicted)):
        summary, report = run.summary(), cost.cost_of_result(run, price)
        frame = run.frame
        late = ((frame["latency_s"] * 1000 > slo_ms) | ~run.ok).mean()
        rows[name] = {
            "p50 (ms)": summary["p50"],
            "p95 (ms)": summary["p95"],
            "p99 (ms)": summary["p99"],
            f"over {slo_ms:g} ms or failed (%)": 100 * late,
            "failed": summary["errors"],
            "mean pods": sum(p["end_s"] - p["start_s"] for p in run.meta["pods"]) / run.duration_s,
            "$ per hour": report.per_hour,
            "$ per 1M predictions": report.per_million,
        }
    table = pd.DataFrame(rows, dtype=float)
    measured = table["measured"].where(table["measured"] != 0)
    table["error (%)"] = (table["predicted"] - measured) / measured * 100
    return table


def prepare_live(cluster: Cluster, policy: sim.Static | sim.Autoscaled, hpa_manifest: dict,
                 timeout_s: float = 120) -> None:
    """Set the model-serving Deployment up for `policy` and wait until it is steady: a static count
    with every pod Ready and none still terminating (it would be billed to the run), or the HPA
    applied and holding its minimum after its first measurement (a start-up burst can ask for more)."""

    deployment = hpa_manifest["spec"]["scaleTargetRef"]["name"]
    if isinstance(policy, sim.Static):
        cluster.scale(deployment, policy.replicas)
        cluster.wait_ready(deployment, replicas=policy.replicas, timeout=timeout_s)
        cluster.wait_until(lambda: len(cluster.pods()) == policy.replicas, timeout_s=timeout_s)
        return
    cluster.apply(hpa_manifest)
    floor = policy.spec.min_replicas
    cluster.wait_until(lambda: cluster.hpas()[0].utilization_pct is not None and cluster.deployments()[0].replicas == floor
               and len(cluster.pods()) == floor, timeout_s=timeout_s)
