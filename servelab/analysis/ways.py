"""Judging lab 06's comparisons: online, batch and edge; dynamic batching; a model on a small device;
a big pod at low and at high traffic. Each returns a `Finding` with the threshold that makes it an effect.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from servelab.analysis.findings import MIN_RATIO, Finding, ratio_threshold
from servelab.analysis.replicas import LATE_GAP, LATE_MIN
from servelab.analysis.sweeps import max_rate_within_slo

if TYPE_CHECKING:
    from servelab.core.result import Result
    from servelab.load.rate_sweep import Sweep

RATE_GAIN = 1.3  # batching must hold the SLO at a rate at least this many times the plain server's


def wait_ms(table: pd.DataFrame) -> pd.Series:
    """How long a prediction waits (ms) per way of serving (`serving_ways.serving_ways`' table): p95 for
    online and edge, the time to the last result for batch, whose rows have no answer of their own."""
    return table["p95 (ms)"].fillna(table["time to last result (s)"] * 1000).astype(float)


def model_share(parts: dict[str, dict[str, float]]) -> float:
    """The model's share of the slowest way's time, from the named parts of each way's time."""
    slowest = max(parts.values(), key=lambda pieces: sum(pieces.values()))
    return slowest.get("model", 0.0) / sum(slowest.values())


def edge_fastest(ways: pd.DataFrame, edge: str, near: str) -> Finding:
    """The edge answers faster than the online service in the nearest region: its p50 at most half
    the `near` row's p50, which includes the network round trip to that region."""
    edge_p50, near_p50 = ways.loc[edge, "p50 (ms)"], ways.loc[near, "p50 (ms)"]
    added = ways.loc[near, "round trip added (ms)"] if "round trip added (ms)" in ways else float("nan")
    distance = "no round trip recorded" if pd.isna(added) else f"{added:g} ms of it the round trip"
    return Finding("06-edge-fastest", "The edge answers faster than the online service, even in the nearest region.",
                   bool(near_p50 >= MIN_RATIO * edge_p50),
                   f"p50 {edge_p50:.2f} ms on the device, {near_p50:.2f} ms online in the near region ({distance}); "
                   f"threshold: {MIN_RATIO:g}x",
                   "Another program slowed the edge run: run the edge cell again.")


def batch_cheapest(ways: pd.DataFrame, batch: str, online: str) -> Finding:
    """A batch Job costs less per prediction in the cloud than the online service: at most half."""
    batch_cost, online_cost = ways.loc[batch, "$ per 1M predictions"], ways.loc[online, "$ per 1M predictions"]
    return Finding("06-batch-cheapest", "A batch Job costs the cloud less per prediction than the online service.",
                   bool(online_cost >= MIN_RATIO * batch_cost),
                   f"${batch_cost:.4f} per 1M by the Job, ${online_cost:.4f} online; threshold: {MIN_RATIO:g}x",
                   "The Job scored too few rows for its start-up to be shared: raise `online_s` or `predictions`.")


def batching_trades(plain: Sweep, batched: Sweep, slo_ms: float, max_delay_ms: float) -> list[Finding]:
    """Dynamic batching slows a lone request at low traffic and raises the highest rate within the SLO.

    Thresholds: at the lowest rate the batched p50 is higher by at least half the batching delay
    (what a lone request waits); the batched server meets the SLO at a rate at least RATE_GAIN
    times the highest the plain server met.
    """
    low_plain, low_batched = plain[0].summary()["p50"], batched[0].summary()["p50"]
    rate = plain[0].summary()["offered_rate"]
    slower = Finding("06-batching-slows-lone-requests",
                     f"At {rate:.0f} req/s batching made the median slower: a lone request waits for company.",
                     bool(low_batched - low_plain >= max_delay_ms / 2),
                     f"p50 {low_plain:.2f} ms without batching, {low_batched:.2f} ms with; threshold: "
                     f"+{max_delay_ms / 2:g} ms, half the {max_delay_ms:g} ms delay",
                     "Other programs moved the medians more than the delay did: run the sweeps again.")
    best_plain = max_rate_within_slo(plain.summary(), slo_ms)
    best_batched = max_rate_within_slo(batched.summary(), slo_ms)
    higher = Finding("06-batching-raises-capacity", f"Batching raised the highest rate served within the {slo_ms:g} ms SLO.",
                     bool(best_batched >= RATE_GAIN * best_plain and best_batched > 0),
                     f"{best_plain:.0f} req/s without batching, {best_batched:.0f} req/s with; threshold: "
                     f"{RATE_GAIN:g}x",
                     "The machine changed since the calibration (run the parameters cell with recalibrate=True), or "
                     "the top rates overloaded the machine itself (see `generator_limited`).")
    return [slower, higher]


def device_too_small(table: pd.DataFrame, big: str, small: str, slo_ms: float) -> Finding:
    """On the small device the big model misses the SLO at p95 and the small model meets it."""
    big_p95, small_p95 = table.loc[big, "p95 (ms)"], table.loc[small, "p95 (ms)"]
    return Finding("06-model-too-big-for-device",
                   f"On the small device {table.loc[big, 'model']} misses the {slo_ms:g} ms SLO at p95 while "
                   f"{table.loc[small, 'model']} meets it.",
                   bool(big_p95 > slo_ms >= small_p95),
                   f"p95 {big_p95:.1f} ms against {small_p95:.2f} ms; the SLO is the threshold",
                   "The device was not slow enough for the big model: lower `device_speed`.")


def big_pod_wasted(sized: pd.DataFrame, small: str, big: str, low: Result, big_run: Result) -> Finding:
    """At low traffic a big pod costs more per prediction for about the same p95.

    Thresholds: $ per 1M at least MIN_RATIO times the small pod's; p95 not lower by more than the
    two runs' own window-to-window spread.
    """
    price = sized.loc[big, "$ per 1M predictions"] / sized.loc[small, "$ per 1M predictions"]
    faster = sized.loc[small, "p95 (ms)"] / sized.loc[big, "p95 (ms)"]
    noise = ratio_threshold(low, big_run)
    return Finding("06-big-pod-low-traffic",
                   "At low traffic the big pod costs more per prediction and answers no faster.",
                   bool(price >= MIN_RATIO and faster < noise),
                   f"$ per 1M x{price:.1f}; p95 {sized.loc[small, 'p95 (ms)']:.1f} ms small, "
                   f"{sized.loc[big, 'p95 (ms)']:.1f} ms big (a ratio under {noise:.1f}, the runs' own spread, "
                   "counts as no faster)",
                   "A busy program slowed the small pod's run: run the cell again.")


def big_pod_busy(small_run: Result, big_run: Result, slo_ms: float) -> Finding:
    """At high traffic the big pod, with a model worker per core, leaves far fewer requests late or failed
    than the small pod on the same traffic: the other half of the lesson's third mistake.

    Threshold: as lab 04's one pod against many, the small pod's share late or failed is at least
    LATE_GAP times the big pod's and LATE_MIN of all requests above it.
    """
    small, big = small_run.late_share(slo_ms), big_run.late_share(slo_ms)
    rate = small_run.summary()["offered_rate"]
    return Finding("06-big-pod-high-traffic",
                   f"At high traffic ({rate:.0f} req/s) the big pod leaves far fewer requests late or failed than the "
                   "small pod.",
                   bool(small >= LATE_GAP * big and small - big >= LATE_MIN),
                   f"{100 * small:.0f}% over {slo_ms:g} ms or failed on the small pod, {100 * big:.0f}% on the big "
                   f"one; threshold: {LATE_GAP:g}x and {100 * LATE_MIN:.0f} points",
                   "The high rate did not overload the small pod (the machine changed since the calibration: run "
                   "the parameters cell with recalibrate=True), or it overloaded the machine itself.")
