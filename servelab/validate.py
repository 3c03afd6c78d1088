"""Is the simulator right? Send a step trace to live pods, replay it in the simulator, compare.

The simulator is calibrated from the learner's own measurements just before the live run
(`sim.calibrate`): an open-loop run at a moderate rate gives how long a request takes and, from
the pods' CPU counters, how much CPU each costs, so how many one pod can serve under its CPU
limit (a closed loop that keeps the pod busy only sizes that run, and is measured again after the
trace to see whether the machine changed). A step trace at fractions of that capacity then goes
to the live Service, and the simulator replays exactly the same arrival times. `compare` puts
p50/p95/p99 and cost from both side by side, with the error of the prediction in %.

    from servelab import validate
    check = validate.against_live(cluster)   # the model-serving Deployment and Service applied
    print(check)                             # per step and overall: measured, predicted, error %
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from servelab import sim
from servelab.core import cost, schedules
from servelab.core.result import Result
from servelab.load import runner

if TYPE_CHECKING:
    from servelab.backends.base import Cluster

FRACTIONS = (0.2, 0.4, 0.6, 0.75)  # of one-replica capacity: the target is below 0.8
DRIFT_WARN = 0.15  # capacity measured after the live run differing by more than this: the machine changed
LATENCY_ROWS = ("p50", "p95", "p99")


def compare(live: Result, predicted: Result, price: cost.Price | None = None) -> pd.DataFrame:
    """Measured vs predicted, one row per figure, with the prediction's error in % of the measured.

    Rows: p50/p95/p99 (ms), successful and failed requests, dollars, dollars per 1M successful
    predictions and idle share, each computed the same way for both runs (summary and
    `cost.cost_of_result` over each run's own pod timeline).
    """
    rows = {}
    for name, result in (("measured", live), ("predicted", predicted)):
        summary, report = result.summary(), cost.cost_of_result(result, price)
        rows[name] = {
            **{f"{p}_ms": summary[p] for p in LATENCY_ROWS},
            "ok": summary["ok"],
            "errors": summary["errors"],
            "dollars": report.dollars,
            "per_million": report.per_million,
            "idle_share": report.idle_share,
        }
    table = pd.DataFrame(rows, dtype=float)
    table["error_pct"] = _error_pct(table["measured"], table["predicted"])
    table.index.name = "figure"
    return table


def window(result: Result, start_s: float, end_s: float) -> Result:
    """The part of a run whose requests were due in [start_s, end_s), on a clock starting at start_s.

    Pods are clipped to the window. Their measured usage is dropped (a pod's usage is known only
    over its recorded life), so within a window each pod is priced at its request: exact when the
    CPU limit equals the request, as in the repo's Deployment.
    """
    frame = result.frame
    part = frame.loc[(frame["intended_s"] >= start_s) & (frame["intended_s"] < end_s)].copy()
    part["intended_s"] -= start_s
    part["sent_s"] -= start_s
    pods = []
    for pod in result.meta.get("pods") or []:
        lo, hi = max(pod["start_s"], start_s), min(pod["end_s"], end_s)
        if hi > lo:
            pods.append({**pod, "start_s": lo - start_s, "end_s": hi - start_s, "cpu_used_core_s": None})
    meta = {**result.meta, "duration_s": end_s - start_s, "pods": pods, "window_s": [start_s, end_s]}
    return Result(part.reset_index(drop=True), meta)


def by_step(live: Result, predicted: Result, schedule: schedules.Step, capacity_rps: float | None = None,
            price: cost.Price | None = None) -> pd.DataFrame:
    """One row per step of the trace: its rate, measured vs predicted p95 and $/1M, errors in %."""
    rows = []
    edges = np.concatenate(([0.0], np.cumsum([d for d, _ in schedule.steps])))
    for i, (_, rate) in enumerate(schedule.steps):
        table = compare(window(live, edges[i], edges[i + 1]), window(predicted, edges[i], edges[i + 1]), price)
        rows.append({
            "step": i + 1,
            "rate_rps": rate,
            "load": rate / capacity_rps if capacity_rps else float("nan"),
            "measured_p95_ms": table.at["p95_ms", "measured"],
            "predicted_p95_ms": table.at["p95_ms", "predicted"],
            "p95_error_pct": table.at["p95_ms", "error_pct"],
            "measured_per_million": table.at["per_million", "measured"],
            "predicted_per_million": table.at["per_million", "predicted"],
            "per_million_error_pct": table.at["per_million", "error_pct"],
            "errors": int(table.at["errors", "measured"]),
        })
    return pd.DataFrame(rows).set_index("step")


@dataclass
class Validation:
    """Everything one check measured and predicted, so a lab can plot or question any part of it."""

    capacity_rps: float  # one pod's, from the calibration's CPU per request (else from the saturating run)
    capacity_after_rps: float  # the saturating run's rate again after the live run: did the machine change?
    service: sim.ServiceTimes
    schedule: schedules.Step
    low: Result  # calibration: a lone request's time
    saturated: Result  # calibration: what one pod can serve
    saturated_after: Result
    live: Result
    predicted: Result
    steps: pd.DataFrame
    overall: pd.DataFrame
    warnings: list[str] = field(default_factory=list)

    @property
    def capacity_drift(self) -> float:
        """How far one pod's closed-loop rate moved during the check (after / before - 1): other programs' doing."""
        return self.saturated_after.summary()["achieved_rate"] / self.saturated.summary()["achieved_rate"] - 1

    def __str__(self) -> str:
        lines = [
            f"calibration: {self.low.summary()['achieved_rate']:.0f} req/s, p50 {self.low.summary()['p50']:.2f} ms; "
            f"one pod serves {self.capacity_rps:.0f} req/s ({self.service.source}); a closed loop got "
            f"{self.saturated.summary()['achieved_rate']:.0f} req/s before the trace and "
            f"{self.saturated_after.summary()['achieved_rate']:.0f} after",
            f"trace: {', '.join(f'{d:g} s at {r:.0f} req/s' for d, r in self.schedule.steps)}",
            "", "per step:", self.steps.to_string(float_format=lambda v: f"{v:.4g}"),
            "", "overall:", self.overall.to_string(float_format=lambda v: f"{v:.4g}"),
        ]
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)

    def save(self, directory: str | Path) -> Path:
        """Each run as `Result.save` writes it (a folder per field holding a Result) and both tables as CSV."""
        directory = Path(directory)
        for name in ("low", "saturated", "live", "predicted", "saturated_after"):
            getattr(self, name).save(directory / name)
        self.steps.to_csv(directory / "steps.csv")
        self.overall.to_csv(directory / "overall.csv")
        return directory


def against_live(
    cluster: Cluster,
    *,
    fractions: tuple[float, ...] = FRACTIONS,
    step_s: float = 30.0,
    calibration_s: float = 8.0,
    calibration_load: float = 0.4,
    saturation_s: float = 5.0,
    users: int = 8,
    price: cost.Price | None = None,
    progress: bool | None = None,
    seed: int = 0,
) -> Validation:
    """Calibrate on `cluster`, send it a step trace, simulate the same trace and compare.

    `cluster` runs the model-serving Deployment at a fixed replica count (no HPA), its pods Ready,
    behind its Service. Pick a model the generator can push past its capacity: on a 2-core machine
    one 0.5-CPU pod serves about 120-300 req/s of the large model but over 1000 of tiny. Steps last
    `step_s` each at `fractions` of the capacity of all its replicas.

    Calibration: a closed loop of `users` for `saturation_s` (it keeps the pods busy without an
    unbounded queue, which would fail readiness probes) gives a first, optimistic capacity: busy
    pods answer queued requests back to back and pay less per request than an open loop's. Then
    an open loop at `calibration_load` of that rate for `calibration_s`, with the pods' CPU
    counters read just before and after it, gives the answer times and the CPU each request costs
    (`sim.calibrate`); the capacity the steps are fractions of is that CPU against the pods' limit
    (`sim.capacity_rps`), or the closed loop's when the backend has no CPU counters. The closed
    loop runs again after the trace: a rate that moved means other programs took or gave back CPU
    during the check, which the prediction could not know (see `warnings`).
    """
    url = cluster.service_url()
    runner.run(url, schedules.Constant(20.0, 2.0), progress=False)  # connections, caches, model
    saturated = runner.run_closed(url, users, saturation_s, cluster=cluster, progress=progress)
    replicas = int(saturated.meta.get("replicas") or 1)
    closed_loop = saturated.summary()["achieved_rate"]
    low = _measure(cluster, url, schedules.Constant(calibration_load * closed_loop, calibration_s), progress, seed)
    service = sim.calibrate(low, saturated=saturated)
    pod = service.pod or _pod_size(low)
    capacity = sim.capacity_rps(service, pod) if service.pod else closed_loop / replicas
    schedule = schedules.Step([(step_s, f * capacity * replicas) for f in fractions])

    live = _measure(cluster, url, schedule, progress, seed)
    predicted = sim.simulate(schedule, service, policy=sim.Static(replicas), pod=pod, seed=seed)
    after = runner.run_closed(url, users, saturation_s, cluster=cluster, progress=progress)
    check = Validation(
        capacity_rps=capacity,
        capacity_after_rps=after.summary()["achieved_rate"] / replicas,
        service=service,
        schedule=schedule,
        low=low,
        saturated=saturated,
        saturated_after=after,
        live=live,
        predicted=predicted,
        steps=by_step(live, predicted, schedule, capacity * replicas, price),
        overall=compare(live, predicted, price),
    )
    check.warnings = _warnings(low, saturated, live, check.capacity_drift)
    return check


def _pod_size(run: Result) -> sim.PodSize:
    """The pods' size as the run's metadata gives it, for a backend without CPU counters to calibrate from."""
    return sim.PodSize(
        cpu_request_cores=run.meta["cpu_request_cores"],
        memory_request_gib=run.meta["memory_request_gib"],
        cpu_busy_cores=run.meta.get("cpu_limit_cores") or run.meta["cpu_request_cores"],
    )


def _measure(cluster: Cluster, url: str, schedule: schedules.Schedule, progress: bool | None, seed: int) -> Result:
    """An open-loop run, its pods clipped to the run and put on its clock (0 = the first intended send).

    Without the clip, the pods' timeline would span the cluster's whole life, calibration included.
    Asking for the pods just before and after makes the local backend read their CPU counters
    then, so the run's CPU is its own, not shifted to the backend's once-a-second samples.
    """
    cluster.pods()
    started = time.time()
    live = runner.run(url, schedule, cluster=cluster, progress=progress, seed=seed)
    cluster.pods()
    pods = cluster.run_metadata(started, time.time())["pods"]
    live.meta["pods"] = [{**p, "start_s": p["start_s"] - started, "end_s": p["end_s"] - started} for p in pods]
    live.meta["clock_unix_s"] = started
    return live


def _warnings(low: Result, saturated: Result, live: Result, drift: float) -> list[str]:
    """What makes this comparison less trustworthy: the generator's own warnings, unenforced limits,
    a capacity that moved during the check (`drift` = after / before - 1)."""
    found = [f"{name} run: {w}" for name, r in (("calibration", low), ("saturating", saturated), ("live", live))
             for w in r.summary()["warnings"]]
    if live.meta.get("limits_enforced") is False:
        note = live.meta.get("limits_note", "")
        found.append(f"CPU limits were not enforced ({note}): pods used what they could get")
    if abs(drift) > DRIFT_WARN:
        found.append(f"one pod's capacity moved by {drift:+.0%} between before and after the trace: other "
                     "programs changed how much CPU the pod and the generator got, so the calibration did not hold")
    return found


def _error_pct(measured: pd.Series, predicted: pd.Series) -> pd.Series:
    """(predicted - measured) / measured in %, NaN where the measured figure is 0 or missing."""
    base = measured.where(measured != 0)
    return (predicted - base) / base * 100.0
