"""Runs side by side: latency, failures and cost of several load runs (or pods) in one table each."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from servelab.analysis.findings import Finding
from servelab.core import cost
from servelab.core.result import percentile

if TYPE_CHECKING:
    from servelab.core.result import Result

HOURS_PER_MONTH = 730  # 8760 hours in a year / 12, the figure cloud price pages use


def compare_runs(runs: dict[str, Result]) -> pd.DataFrame:
    """Load runs side by side: requests, rates, percentiles (ms) and errors, one row per run."""
    keys = ["requests", "achieved_rate", "p50", "p95", "p99", "max", "errors"]
    return pd.DataFrame({name: {k: run.summary()[k] for k in keys} for name, run in runs.items()}).T.round(2)


def step_comparison(runs: dict[str, Result], price: cost.Price, peak: tuple[float, float],
                    slo_ms: float) -> pd.DataFrame:
    """One row per run of the same step: p95 overall and in the peak, failures, late share, pods, $/1M, idle."""
    late_column = f"over {slo_ms:g} ms or failed (%)"
    rows = {}
    for name, run in runs.items():
        frame, report, summary = run.frame, cost.cost_of_result(run, price), run.summary()
        ok = (frame.status >= 200) & (frame.status < 300)
        in_peak = frame[frame.intended_s.between(*peak) & ok]
        pod_seconds = sum(pod["end_s"] - pod["start_s"] for pod in run.meta["pods"])
        rows[name] = {
            "p95 (ms)": summary["p95"],
            "p95 in the peak (ms)": percentile(in_peak.latency_s * 1000, 95),
            "failed": summary["errors"],
            late_column: 100 * run.late_share(slo_ms),
            "mean pods": pod_seconds / run.duration_s,
            "$ per 1M predictions": report.per_million,
            "idle share": report.idle_share,
        }
    return pd.DataFrame(rows).T


def latency_and_cost(runs: dict[str, Result], price: cost.Price, slo_ms: float | None = None) -> pd.DataFrame:
    """Load runs through a cluster side by side: the pod's CPU request, p50/p95, failures and cost; with
    `slo_ms`, also the share of requests over it or failed (the share users noticed)."""
    rows = {}
    for name, run in runs.items():
        report, summary = cost.cost_of_result(run, price), run.summary()
        rows[name] = {"CPU request (cores)": run.meta["pods"][0]["cpu_request_cores"],
                      "offered_rate": summary["offered_rate"], "p50 (ms)": summary["p50"], "p95 (ms)": summary["p95"],
                      "errors": summary["errors"], "$ per hour": report.per_hour,
                      "$ per 1M predictions": report.per_million, "idle share": report.idle_share}
        if slo_ms is not None:
            rows[name][f"over {slo_ms:g} ms or failed (%)"] = 100 * run.late_share(slo_ms)
    return pd.DataFrame.from_dict(rows, orient="index")


def pod_cost_table(pods: list[dict], price: cost.Price) -> pd.DataFrame:
    """Per pod (run_metadata()["pods"]): life so far, CPU used, dollars so far, per hour and per month.

    Cost follows servelab.core.cost (max(request, usage) x hours x price), so a pod that serves
    nothing still costs its requests; the last row adds the pods up.
    """
    usages = [cost.PodUsage.from_dict(pod) for pod in pods]
    rows = cost.cost(usages, price, predictions_ok=0).breakdown.set_index("pod")
    per_hour = rows["dollars"] / rows["hours"]
    table = pd.DataFrame({
        "lived (s)": rows["hours"] * 3600,
        "CPU used (core-s)": [u.cpu_used_core_s for u in usages],
        "$ so far": rows["dollars"],
        "$ per hour": per_hour,
        f"$ per month ({HOURS_PER_MONTH} h)": per_hour * HOURS_PER_MONTH,
        "idle share": rows["idle_dollars"] / rows["dollars"],
    })
    money = [c for c in table.columns if c.startswith("$")]
    table.loc["all pods", money] = table[money].sum()
    return table


def fixed_pod_late(table: pd.DataFrame, slo_ms: float, one: str, others: list[str]) -> Finding:
    """Lab 05: one fixed pod leaves more requests late or failed than each of the `others` on the same traffic.

    Threshold: its share late or failed is at least 1.5 times each other's, and 10 points above it. Not
    twice: the HPA is late too until its new pods are Ready, and in a short peak (quick mode) that
    delay is a third of the peak.
    """
    column = f"over {slo_ms:g} ms or failed (%)"
    mine = table.loc[one, column]
    holds = all(mine >= 1.5 * table.loc[o, column] and mine - table.loc[o, column] >= 10 for o in others)
    shares = ", ".join(f"{table.loc[o, column]:.1f}% {o}" for o in others)
    return Finding("05-one-pod-late", f"One fixed pod leaves more requests late or failed than {' or '.join(others)}.",
                   bool(holds), f"{mine:.1f}% {one}, {shares}; threshold: 1.5 times as many and 10 points more",
                   "The peak did not overload one pod (the machine changed since the calibration: run the "
                   "parameters cell with recalibrate=True), or the peak was too short next to the HPA's delay.")
