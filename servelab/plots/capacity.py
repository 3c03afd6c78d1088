"""Figures of rate sweeps and what they cost (labs 03, 04, 05, 06): p95 against rate per replica count
or server setting, $ per 1M predictions against rate, and runs of a step side by side."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from servelab.analysis.replicas import price_per_hour
from servelab.analysis.sweeps import max_rate_within_slo
from servelab.plots.style import label_log_ticks, new_axes, slo_line

if TYPE_CHECKING:
    from servelab.load import Sweep


def cost_per_million(costs: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """$ per 1M predictions against offered rate (`analysis.sweeps.cost_by_rate`), with the idle share beside it."""
    ax = new_axes(ax)
    rates, per_million = costs.index.to_numpy(dtype=float), costs["$ per 1M predictions"]
    ax.plot(rates, per_million, marker="o", color="tab:green", label="$ per 1M predictions")
    ax.set_yscale("log")
    label_log_ticks(ax.yaxis, "$")
    ax.set_xlabel("offered rate (requests/s)")
    ax.set_ylabel("$ per 1M predictions (log scale)")
    idle = ax.twinx()
    idle.plot(rates, costs["idle share"] * 100, ls="--", color="tab:grey", label="idle share")
    idle.set_ylabel("idle share of the cost (%)")
    idle.set_ylim(0, 100)
    cheapest = per_million.idxmin()
    ax.set_title(f"A prediction costs {per_million.iloc[0] / per_million.min():.0f}x more at "
                 f"{rates[0]:g} req/s than at {cheapest:g} req/s")
    lines = ax.get_legend_handles_labels(), idle.get_legend_handles_labels()
    ax.legend(lines[0][0] + lines[1][0], lines[0][1] + lines[1][1], fontsize="small")
    return ax


def p95_and_cost(table: pd.DataFrame, *, slo_ms: float, cheap: str, dear: str) -> Figure:
    """Bar charts of p95 in the peak and $ per 1M, one bar per run (`analysis.compare.step_comparison`'s table);
    the title says how many times `dear` costs `cheap` per prediction."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5), layout="constrained")
    table["p95 in the peak (ms)"].plot.barh(ax=left, color="tab:orange", logx=True)
    slo_line(left, slo_ms, vertical=True)
    left.set_xlabel("p95 during the peak (ms, log scale)")
    left.legend(fontsize="small")
    table["$ per 1M predictions"].plot.barh(ax=right, color="tab:green")
    right.set_xlabel("$ per 1M predictions")
    right.set_yticklabels([])
    times = table.loc[dear, "$ per 1M predictions"] / table.loc[cheap, "$ per 1M predictions"]
    fig.suptitle(f"'{dear}' cost {times:.1f}x what '{cheap}' cost per prediction")
    return fig


def p95_by_replicas(sweeps: Mapping[int, Sweep], *, slo_ms: float, spread: Mapping[int, pd.DataFrame] | None = None,
                    ax: Axes | None = None) -> Axes:
    """p95 against offered rate, one curve per replica count, with the SLO line; the title reads off
    the highest rate each count served within the SLO (`analysis.sweeps.max_rate_within_slo`).

    `spread` (per count, `analysis.sweeps.p95_window_range`) shades each curve's band from its runs'
    lowest to highest window p95, so curves that differ by less than their bands are seen to be the same
    within noise.
    """
    ax = new_axes(ax)
    best = _p95_curves(ax, sweeps, slo_ms, _replicas_label, with_p50=False)
    if spread is not None:
        for i, n in enumerate(sweeps):  # the colours of `_p95_curves`, in the same order
            band = spread[n]
            ax.fill_between(band.index, band["p95 window min"], band["p95 window max"], color=f"C{i}", alpha=0.2, lw=0)
    ax.set_title("p95 within the SLO up to " + ", ".join(f"{r:g}" for r in best.values())
                 + " req/s with " + ", ".join(map(str, best)) + " replicas")
    return ax


def p95_by_setting(sweeps: Mapping[str, Sweep], *, slo_ms: float, ax: Axes | None = None) -> Axes:
    """p50 (dashed) and p95 (solid) against offered rate, one colour per server setting (e.g. with
    and without dynamic batching); failing runs ringed in red. The title reads off each setting's
    highest rate within the SLO (`analysis.sweeps.max_rate_within_slo`)."""
    ax = new_axes(ax)
    best = _p95_curves(ax, sweeps, slo_ms, str, with_p50=True)
    ax.set_title("p95 within the SLO up to " + "; ".join(f"{rate:g} req/s {name}" for name, rate in best.items()))
    return ax


def _p95_curves(ax: Axes, sweeps: Mapping[Hashable, Sweep], slo_ms: float, label: Callable[[Hashable], str], *,
                with_p50: bool) -> dict[Hashable, float]:
    """One p95 curve per sweep (and a dashed p50 with failing runs ringed, if `with_p50`), the SLO
    line and log axes; returns each sweep's highest rate within the SLO, for the caller's title."""
    best = {}
    for i, (key, sweep) in enumerate(sweeps.items()):
        table = sweep.summary()
        best[key] = max_rate_within_slo(table, slo_ms)
        ax.plot(table.index, table["p95"], marker="o", color=f"C{i}", label=f"{label(key)}: p95" if with_p50 else label(key))
        if with_p50:
            ax.plot(table.index, table["p50"], marker=".", ls="--", color=f"C{i}", label=f"{label(key)}: p50")
            failing = table[table["errors"] > 0]
            ax.scatter(failing.index, failing["p95"], s=160, facecolors="none", edgecolors="tab:red",
                       label="run with failures" if len(failing) and i == 0 else None)
    slo_line(ax, slo_ms, ":" if with_p50 else "--")
    ax.set(yscale="log", xlabel="offered rate (requests/s)",
           ylabel="latency (ms, log scale)" if with_p50 else "p95 latency (ms, log scale)")
    ax.legend(fontsize="small")
    return best


def cost_by_replicas(costs: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """$ per 1M predictions against offered rate, one curve per replica count (`costs` indexed by
    replicas and offered rate, as `analysis.sweeps.cost_by_rate` per sweep); the legend gives each count's $ per hour."""
    ax = new_axes(ax)
    per_hour = price_per_hour(costs)
    for n in per_hour.index:
        per_million = costs.loc[n, "$ per 1M predictions"]
        ax.plot(per_million.index, per_million, marker="o", label=f"{_replicas_label(n)} (${per_hour[n]:.3f}/h)")
    ax.set(yscale="log", xlabel="offered rate (requests/s)", ylabel="$ per 1M predictions (log scale)")
    lowest_rate = costs.index.get_level_values("offered_rate").min()
    low = costs.xs(lowest_rate, level="offered_rate")["$ per 1M predictions"]
    ax.set_title(f"At {lowest_rate:g} req/s a prediction costs {low.max() / low.min():.1f}x more with {low.idxmax()} replicas than with {low.idxmin()}")
    ax.legend(fontsize="small")
    return ax


def _replicas_label(n: int) -> str:
    return f"{n} replica{'s' if n > 1 else ''}"
