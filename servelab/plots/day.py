"""Figures of lab 07: a simulated day per architecture, and a live run against the simulator's prediction."""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from servelab.core.result import Result
from servelab.plots.style import label_log_ticks, slo_line

if TYPE_CHECKING:
    from servelab.architectures import Day


def day_by_architecture(day: Day) -> Figure:
    """p95 per window above, pods paid for per window below (offered rate behind them), one line per
    architecture of `architectures.simulate_day`, so a p95 spike lines up with the pods that caused it."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=True, layout="constrained")
    scale = 24 / day.duration_s  # a compressed day is drawn on the same 24 hours
    x = day.rate.index.to_numpy() * scale
    for i, name in enumerate(day.p95_ms.columns):
        style = dict(color=f"C{i}", where="post", label=name)
        top.step(x, day.p95_ms[name], **style)
        bottom.step(x, day.pods[name], **style)
    slo_line(top, day.slo_ms)
    top.axvspan(day.peak[0] * scale, day.peak[1] * scale, color="grey", alpha=0.15, label="peak hour")
    top.set(yscale="log", ylabel="p95 per window (ms, log scale)")
    within = (day.p95_ms.max() <= day.slo_ms).sum()
    top.set_title(f"{within} of {len(day.p95_ms.columns)} architectures keep p95 within {day.slo_ms:g} ms "
                  "in every window of the day")
    top.legend(fontsize="small", loc="upper left")
    _rate_behind(bottom, x, day)
    bottom.set(ylabel="pods paid for (mean per window)", xlabel="hour of the day")
    bottom.set_ylim(0, day.pods.max().max() + 0.5)
    busiest = day.pods.max()
    bottom.set_title(f"Pods range from {day.pods.min().min():.1f} to {busiest.max():.1f}; "
                     f"'{busiest.idxmax()}' holds the most")
    return fig


def _rate_behind(ax: Axes, x: np.ndarray, day: Day) -> None:
    """The offered rate as a grey area on a twin axis drawn behind `ax`'s lines."""
    rate = ax.twinx()
    rate.fill_between(x, day.rate, step="post", color="grey", alpha=0.2)
    rate.set_ylabel("offered requests/s (grey)")
    rate.set_ylim(0, day.rate.max() * 1.1)
    ax.set_zorder(rate.get_zorder() + 1)
    ax.patch.set_visible(False)


def predicted_vs_measured(live: Result, predicted: Result, *, window_s: float, slo_ms: float) -> Figure:
    """The live run and the simulator's prediction of it on one time axis: p95 per window above,
    pods paid for below; the title gives both overall p95s and the prediction's error."""
    from servelab import architectures  # the simulator's applications, loaded only for this figure

    duration = max(live.duration_s, predicted.duration_s)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True, layout="constrained")
    for run, name, colour in ((live, "measured", "tab:blue"), (predicted, "predicted", "tab:orange")):
        p95 = architectures.p95_over_time(run, window_s, duration)
        top.step(p95.index, p95, where="post", color=colour, label=name)
        pods = architectures.pods_over_time(run, window_s, duration)
        bottom.step(pods.index, pods, where="post", color=colour, label=name)
    slo_line(top, slo_ms)
    top.set(yscale="log", ylabel=f"p95 per {window_s:g} s (ms, log scale)")
    label_log_ticks(top.yaxis)
    measured, forecast = live.summary()["p95"], predicted.summary()["p95"]
    top.set_title(f"p95 over the run: measured {measured:.1f} ms, predicted {forecast:.1f} ms "
                  f"({(forecast - measured) / measured:+.0%})")
    top.legend(fontsize="small")
    bottom.set(ylabel="pods paid for (mean per window)", xlabel="time since the run started (s)")
    bottom.set_ylim(0, max(bottom.get_ylim()[1], 1) + 0.5)
    bottom.legend(fontsize="small")
    return fig
