"""Figures of load runs: latency over time, latency against offered rate, latency distributions.

Each takes what `servelab.load` (or the simulator, which returns the same shape) produced, draws on
`ax` (or a new figure), labels axes with units, titles the plot with what it shows in numbers, and
returns the Axes so a lab can add to it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from servelab.analysis import runs
from servelab.core.result import Result
from servelab.plots.style import PERCENTILE_NAMES, new_axes, slo_line


def latency_over_time(result: Result, ax: Axes | None = None, *, slo_ms: float | None = None,
                      window_s: float = 1.0) -> Axes:
    """Every request's latency at its intended send time, with the p95 of each `window_s` window.

    Failed requests are drawn as red crosses at the top, so they cannot pass for fast answers.
    """
    ax = new_axes(ax)
    frame, ok = result.frame, result.ok
    t, latency_ms = frame["intended_s"], frame["latency_s"] * 1000.0
    ax.scatter(t[ok], latency_ms[ok], s=4, alpha=0.35, color="tab:blue", label="request (ok)")
    p95 = runs.p95_per_window(result, window_s)
    ax.stairs(p95.to_numpy(), np.arange(len(p95) + 1) * window_s, color="tab:orange", lw=2, baseline=None,
              label=f"p95 per {window_s:g} s")
    if (~ok).any():
        top = latency_ms[ok].max() if ok.any() else 1.0
        ax.scatter(t[~ok], np.full((~ok).sum(), top), marker="x", color="tab:red", s=16,
                   label=f"failed ({(~ok).sum()})")
    if slo_ms is not None:
        slo_line(ax, slo_ms)
    ax.set_yscale("log")
    ax.set_xlabel("intended send time since start (s)")
    ax.set_ylabel("latency (ms, log scale)")
    ax.set_title(_over_time_title(result.summary(), result.meta, p95))
    ax.legend(loc="upper right", fontsize="small")
    return ax


def _over_time_title(s: dict, meta: dict, p95: pd.Series) -> str:
    mode = "closed loop" if meta.get("mode") == "closed" else f"open loop at {s['offered_rate']:.0f} req/s"
    title = f"{mode}: p50 {s['p50']:.1f} ms, p99 {s['p99']:.1f} ms"
    if len(p95):
        title += f"; worst second p95 {p95.max():.0f} ms at t={p95.idxmax():.0f} s"
    if s["errors"]:
        title += f"; {s['errors']} failed"
    return title


def latency_vs_rate(results: Iterable[Result], ax: Axes | None = None, *, slo_ms: float | None = None,
                    percentiles: Iterable[str] = ("p50", "p95", "p99")) -> Axes:
    """Latency percentiles against offered rate, one point per run of a sweep.

    `results` is a `Sweep` or a list of Results. Runs with failures are ringed in red: their
    percentiles describe only the requests that succeeded.
    """
    ax = new_axes(ax)
    table = runs.sweep_table(results)
    rates = table["offered_rate"]
    for name in percentiles:
        ax.plot(rates, table[name], marker="o", label=PERCENTILE_NAMES.get(name, name))
    failing = table[table["errors"] > 0]
    if len(failing):
        ax.scatter(failing["offered_rate"], failing[list(percentiles)[-1]], s=160, facecolors="none",
                   edgecolors="tab:red", label="run with failures")
    if slo_ms is not None:
        slo_line(ax, slo_ms)
    ax.set_yscale("log")
    ax.set_xlabel("offered rate (requests/s)")
    ax.set_ylabel("latency (ms, log scale)")
    ax.set_title(_vs_rate_title(table, slo_ms, "p95" if "p95" in percentiles else list(percentiles)[-1]))
    ax.legend(fontsize="small")
    return ax


def _vs_rate_title(table: pd.DataFrame, slo_ms: float | None, key: str) -> str:
    first, last = table.iloc[0], table.iloc[-1]
    if slo_ms is None:
        return (f"{key} grows from {first[key]:.1f} ms at {first['offered_rate']:.0f} req/s "
                f"to {last[key]:.1f} ms at {last['offered_rate']:.0f} req/s")
    held = runs.runs_within_slo(table, slo_ms, key)
    if held == len(table):
        return f"{key} meets the {slo_ms:g} ms SLO at every rate tried (up to {last['offered_rate']:.0f} req/s)"
    if held == 0:
        return f"{key} misses the {slo_ms:g} ms SLO already at {first['offered_rate']:.0f} req/s"
    return f"{key} meets the {slo_ms:g} ms SLO up to {table['offered_rate'].iloc[held - 1]:.0f} req/s, then misses it"


def latency_cdf(results: Mapping[str, Result], ax: Axes | None = None) -> Axes:
    """Latency distributions side by side (e.g. open vs closed loop): the fraction of requests at or below x.

    The x axis is logarithmic so that a tail of stalls is as visible as the fast median.
    """
    ax = new_axes(ax)
    p99s = []
    for label, result in results.items():
        ax.plot(*runs.latency_cdf(result), label=label)
        p99s.append(f"{label} p99 {result.summary()['p99']:.1f} ms")
    ax.axhline(0.99, color="grey", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("latency (ms, log scale)")
    ax.set_ylabel("fraction of requests at or below")
    ax.set_title(" vs ".join(p99s))
    ax.legend(loc="lower right", fontsize="small")
    return ax


def mark_saturation(ax: Axes, rate: float | None) -> Axes:
    """Mark the saturation point found by `analysis.sweeps.saturation_rate` on a latency_vs_rate plot."""
    if rate is not None:
        ax.axvline(rate, color="black", ls=":", lw=1.5, label=f"saturation: p95 turns up at {rate:g} req/s")
        ax.legend(fontsize="small")
    return ax
