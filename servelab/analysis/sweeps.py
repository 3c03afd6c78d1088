"""Reading a rate sweep (`load.sweep(...).summary()`): where latency turns up, the highest rate within
an SLO, what each rate cost, and whether the run showed what lab 03 expects of one pod.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from servelab.analysis.findings import Finding, window_p95

if TYPE_CHECKING:
    from servelab.core.cost import Price
    from servelab.core.result import Result
    from servelab.load.rate_sweep import Sweep

SATURATION_FACTOR = 2.0  # p95 this many times its floor counts as "turned up"
BELOW = 0.7  # multiples of capacity a pod must serve within the SLO
ABOVE = 1.3  # multiples of capacity from which a pod must miss it


def saturation_rate(table: pd.DataFrame) -> float | None:
    """The lowest offered rate from which p95 stays above 2x its lowest value in the sweep.

    `table` is `Sweep.summary()` (indexed by offered rate). "Stays above" ignores a single noisy
    step below saturation; None means the replica never saturated at the rates tried.
    """
    p95 = table["p95"].sort_index()
    high = p95 > SATURATION_FACTOR * p95.min()
    stays_high = high[::-1].cummin()[::-1]  # True from the first rate after which every rate is high
    return float(stays_high.idxmax()) if stays_high.any() else None


def max_rate_within_slo(table: pd.DataFrame, slo_ms: float) -> float:
    """The highest offered rate of a sweep served with p95 <= `slo_ms` and no failure; 0 if none."""
    meets = table[(table["p95"] <= slo_ms) & (table["errors"] == 0)]
    return float(meets.index.max()) if len(meets) else 0.0


def cost_by_rate(sweep: Sweep, price: Price | None = None) -> pd.DataFrame:
    """What each run of a sweep cost (servelab.core.cost, from the pods the cluster recorded), by offered rate."""
    from servelab.core import cost

    rows = {}
    for result in sweep:
        report = cost.cost_of_result(result, price)
        rows[round(result.summary()["offered_rate"], 2)] = {
            "predictions": report.predictions_ok,
            "$ for the run": report.dollars,
            "$ per hour": report.per_hour,
            "$ per 1M predictions": report.per_million,
            "idle share": report.idle_share,
        }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "offered_rate"
    return table


def p95_window_range(sweep: Sweep) -> pd.DataFrame:
    """For each offered rate, the lowest and highest p95 (ms) over `findings.WINDOWS` equal windows of its run.

    A p95 measured once moves from one window of the same run to the next; two curves whose p95s differ
    by less than that range differ by noise, not by what was changed. The windows are the ones the
    labs' findings take their own spread from (`findings.window_p95`).
    """
    rows = {}
    for result in sweep:
        p95 = window_p95(result)
        rows[round(result.summary()["offered_rate"], 2)] = {"p95 window min": p95.min(), "p95 window max": p95.max()}
    table = pd.DataFrame.from_dict(rows, orient="index").round(2)
    table.index.name = "offered_rate"
    return table


def saturates_near_capacity(table: pd.DataFrame, capacity_rps: float, slo_ms: float) -> Finding:
    """Lab 03: p95 within the SLO up to BELOW x capacity, over it (or failures) from ABOVE x on.

    The threshold is the SLO itself: the claim is about crossing it, at the rate calibration
    predicted, not about any rise of a few milliseconds.
    """
    multiples = table.index / capacity_rps
    low, high = table[multiples <= BELOW], table[multiples >= ABOVE]
    kept = bool(len(low)) and bool(((low.p95 <= slo_ms) & (low.errors == 0)).all())
    missed = bool(len(high)) and bool(((high.p95 > slo_ms) | (high.errors > 0)).all())
    evidence = (f"p95 {_range(low.p95)} ms up to {BELOW:g}x the calibrated {capacity_rps:.0f} req/s, "
                f"{_range(high.p95)} ms with {int(high.errors.sum())} failures from {ABOVE:g}x; SLO {slo_ms:g} ms")
    return Finding("03-saturates-near-capacity",
                   "Latency stays within the SLO well below the calibrated capacity and leaves it above it.",
                   kept and missed, evidence,
                   "The machine changed between the calibration and the sweep (another program started or "
                   "stopped): run the parameters cell with recalibrate=True, then the sweep again.")


def hides_stalls(open_run: Result, closed_run: Result, stall_s: float) -> Finding:
    """Lab 03: under the same stalls, the open loop's p99 is far above the closed loop's.

    Threshold: the open loop's p99 reaches a quarter of a stall, and is at least 5x the closed loop's.
    """
    open_p99, closed_p99 = open_run.summary()["p99"], closed_run.summary()["p99"]
    holds = open_p99 >= 250 * stall_s and open_p99 >= 5 * closed_p99
    return Finding("03-open-loop-sees-stalls",
                   "The open loop's p99 shows the stalls; the closed loop's hides them.",
                   holds, f"open-loop p99 {open_p99:.0f} ms, closed-loop p99 {closed_p99:.1f} ms; stalls of "
                   f"{1000 * stall_s:.0f} ms; threshold: open >= a quarter of a stall and >= 5x closed",
                   "The stalls did not land in the open loop's run: make `stall_run_s` longer.")


def _range(values: pd.Series) -> str:
    if values.empty:
        return "-"
    return f"{values.min():.1f}" if values.min() == values.max() else f"{values.min():.1f}-{values.max():.1f}"
