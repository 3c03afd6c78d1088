"""Reading load runs for their figures: p95 window by window, the latency distribution, a sweep as a
table, and how far up a sweep's rates the SLO held."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from servelab.core.result import Result, percentile_per_window


def p95_per_window(result: Result, window_s: float) -> pd.Series:
    """p95 latency (ms) of the successful requests due in each window, up to the last window with one;
    NaN for a window without a success, so a plot leaves a gap rather than drawing a fast answer."""
    frame = result.frame[result.ok]
    return percentile_per_window(frame["intended_s"], frame["latency_s"] * 1000.0, window_s, 95)


def latency_cdf(result: Result) -> tuple[np.ndarray, np.ndarray]:
    """The successful requests' latencies (ms, sorted) and the fraction of them at or below each."""
    latency_ms = np.sort(result.frame.loc[result.ok, "latency_s"].to_numpy() * 1000.0)
    return latency_ms, np.arange(1, len(latency_ms) + 1) / max(len(latency_ms), 1)


def sweep_table(results: Iterable[Result]) -> pd.DataFrame:
    """One summary row per run, in order of offered rate."""
    rows = [r.summary() for r in results]
    return pd.DataFrame(rows).sort_values("offered_rate").reset_index(drop=True)


def runs_within_slo(table: pd.DataFrame, slo_ms: float, key: str = "p95") -> int:
    """How many runs, from the lowest rate up, kept `key` within the SLO with no failure before the first
    that did not (all of them when none missed). `table` as from `sweep_table`, in order of rate."""
    meets = (table[key] <= slo_ms) & (table["errors"] == 0)
    return int(meets.cumprod().sum())
