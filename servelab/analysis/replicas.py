"""Replica counts side by side (lab 04): which counts and rates this machine can hold, what each count
served at its busiest, where the machine's cores ran out, and the lesson's two scaling mistakes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from servelab.analysis.calibration import Capacity
from servelab.analysis.findings import Finding, ratio_threshold

if TYPE_CHECKING:
    from servelab.load.rate_sweep import Sweep

LATE_GAP = 2.0  # one pod's late share must be at least this many times the most pods' ...
LATE_MIN = 0.10  # ... and at least this share of all requests higher


@dataclass(frozen=True)
class Plan:
    """The replica counts and rates an experiment keeps on this machine, and why it dropped any."""

    counts: list[int]
    rates: list[float]
    notes: list[str]

    def __str__(self) -> str:
        kept = f"replicas {self.counts} at {', '.join(f'{r:.0f}' for r in self.rates)} req/s"
        return kept + "".join(f"\n  {note}" for note in self.notes)


def plan(capacity: Capacity, counts: list[int], rates: list[float]) -> Plan:
    """Keep the counts whose pods' CPU requests fit in this machine's cores (as a scheduler would place
    them; the rest would stay Pending) and the rates this machine can push through pods, Service and
    load generator at all (`Capacity.machine_rate`): past that, every count would measure the machine.
    """
    notes, cpu_request = [], capacity.cpu_request
    fit = [n for n in counts if n * cpu_request <= capacity.cores + 1e-9] or [min(counts)]
    if fit != counts:
        notes.append(f"left out {sorted(set(counts) - set(fit))} replicas: {max(counts)} pods requesting {cpu_request:g} CPU "
                     f"each do not fit in this machine's {capacity.cores:g} usable cores (they would stay Pending)")
    kept = [r for r in rates if r <= capacity.machine_rate] or [min(rates)]
    if kept != rates:
        notes.append(f"left out {', '.join(f'{r:.0f}' for r in rates if r not in kept)} req/s: this machine pushes about "
                     f"{capacity.machine_rate:.0f} req/s through pods, Service and load generator together "
                     f"({capacity.machine_cpu_ms:.2f} ms of CPU per request on {capacity.cores:g} cores)")
    return Plan(fit, kept, notes)


def scaling_table(sweeps: dict[int, Sweep]) -> pd.DataFrame:
    """For each replica count, its busiest run: what it served, the CPU its pods and the generator used,
    its speed-up over the fewest replicas, and the perfect speed-up to compare with.

    Pods' CPU is their measured CPU seconds over the window they were alive in that run; their
    limit is the one the backend ran them with (the run's metadata).
    """
    def busiest(sweep: Sweep) -> dict[str, float]:
        result = max(sweep, key=lambda r: r.summary()["achieved_rate"])
        pods = result.meta["pods"]
        window = max(pod["end_s"] for pod in pods) - min(pod["start_s"] for pod in pods)
        return {"served (req/s)": result.summary()["achieved_rate"],
                "pods' CPU (cores)": sum(pod["cpu_used_core_s"] for pod in pods) / window,
                "generator CPU (cores)": result.summary()["client_cpu"],
                "CPU limit of the pods (cores)": len(pods) * (result.meta.get("cpu_limit_cores") or float("nan"))}

    table = pd.DataFrame({n: busiest(sweep) for n, sweep in sweeps.items()}).T
    table.index.name = "replicas"
    fewest = table.index.min()
    table["speed-up"] = table["served (req/s)"] / table.loc[fewest, "served (req/s)"]
    table["perfect speed-up"] = table.index / fewest
    return table


def price_per_hour(costs: pd.DataFrame) -> pd.Series:
    """What each replica count costs an hour (the median over its runs), from `costs` indexed by replicas
    and offered rate as `analysis.sweeps.cost_by_rate` per sweep."""
    return costs.groupby(level="replicas")["$ per hour"].median()


def few_and_many(sweeps: dict[int, Sweep], costs: pd.DataFrame, slo_ms: float) -> pd.DataFrame:
    """The fewest and the most replicas at the highest and the lowest offered rate, side by side:
    p95, failures, the share late or failed, $ per hour, $ per 1M predictions and idle share (the
    lesson's two scaling mistakes)."""
    few, many = min(sweeps), max(sweeps)
    rates = [r.summary()["offered_rate"] for r in sweeps[few]]
    cases = {"one pod, heavy load": (few, -1), "more pods, heavy load": (many, -1),
             "one pod, low traffic": (few, 0), "many pods, low traffic": (many, 0)}
    rows = {}
    for case, (n, i) in cases.items():
        run = sweeps[n][i]
        rate = sorted(rates)[i]
        rows[case] = {"replicas": n, "offered_rate": rate, "p95": run.summary()["p95"], "errors": run.summary()["errors"],
                      f"over {slo_ms:g} ms or failed (%)": 100 * run.late_share(slo_ms),
                      **costs.loc[(n, rate), ["$ per hour", "$ per 1M predictions", "idle share"]]}
    return pd.DataFrame(rows).T


def one_pod_overloaded(sweeps: dict[int, Sweep], slo_ms: float) -> Finding:
    """Lab 04: at the top rate one pod leaves far more requests late or failed than the most pods.

    Threshold: one pod's share late or failed is at least LATE_GAP times the most pods' and at
    least LATE_MIN of all requests above it.
    """
    few, many = min(sweeps), max(sweeps)
    one, more = sweeps[few][-1], sweeps[many][-1]
    a, b = one.late_share(slo_ms), more.late_share(slo_ms)
    holds = few != many and a >= LATE_GAP * b and a - b >= LATE_MIN
    return Finding("04-one-pod-heavy-load",
                   f"At the top rate one pod leaves far more requests late or failed than {many} pods.", holds,
                   f"{100 * a:.0f}% over {slo_ms:g} ms or failed with {few} pod, {100 * b:.0f}% with {many}, at "
                   f"{one.summary()['offered_rate']:.0f} req/s; threshold: {LATE_GAP:g}x and {100 * LATE_MIN:.0f} points",
                   "The top rate did not overload one pod (the machine changed since the calibration: run the "
                   "parameters cell with recalibrate=True), or it overloaded the machine for every count (section 4).")


def many_pods_idle(sweeps: dict[int, Sweep], costs: pd.DataFrame) -> Finding:
    """Lab 04: at the lowest rate the most pods cost about as many times more per prediction as there are
    more of them, and answer no faster.

    Threshold: $ per 1M at least 0.9 x the ratio of pod counts (each pod pays for its requests however
    idle), and p95 not lower by more than the runs' own spread.
    """
    few, many = min(sweeps), max(sweeps)
    one, more = sweeps[few][0], sweeps[many][0]
    rate = one.summary()["offered_rate"]
    price_ratio = costs.loc[(many, rate), "$ per 1M predictions"] / costs.loc[(few, rate), "$ per 1M predictions"]
    noise = ratio_threshold(one, more)
    faster = one.summary()["p95"] / more.summary()["p95"]
    holds = few != many and price_ratio >= 0.9 * many / few and faster < noise
    return Finding("04-many-pods-low-traffic",
                   f"At low traffic {many} pods cost about {many // few} times more per prediction than {few} and answer "
                   "no faster.",
                   holds, f"$ per 1M x{price_ratio:.1f}; p95 {one.summary()['p95']:.1f} ms with {few} pod, "
                   f"{more.summary()['p95']:.1f} ms with {many} (a ratio under {noise:.1f}, the runs' own spread, "
                   "counts as no faster)",
                   "A busy program slowed one of the two runs: run section 2 again.")
