"""Figures of lab 06: online, batch and edge side by side, and predictions on a small device."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from servelab.analysis.ways import wait_ms
from servelab.core.result import percentile
from servelab.plots.style import new_axes, slo_line


class TimedRun(Protocol):
    """A run of predictions one after another (`serving_ways.EdgeRun`): each one's wall time, in order."""

    seconds: np.ndarray


def serving_ways(table: pd.DataFrame) -> Figure:
    """How long a prediction waits and what a million cost, one bar per way of serving (`serving_ways.serving_ways`).

    The wait is p95 for online and edge, and the time to the last result for batch (its rows have
    no answer of their own until the Job ends), on one log axis so both fit.
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.2), layout="constrained")
    waits = wait_ms(table)
    colours = ["tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:red"][: len(table)]
    left.barh(table.index, waits, color=colours, log=True)
    left.set_xlabel("wait for a prediction (ms, log): p95, or time to last result for batch")
    left.invert_yaxis()
    per_million = table["$ per 1M predictions"].astype(float)
    right.barh(table.index, per_million, color=colours, log=bool((per_million > 0).all()))
    right.set_xlabel("$ per 1M predictions (cloud bill; the edge: its device)")
    right.set_yticklabels([])
    right.invert_yaxis()
    for row, value in enumerate(per_million):
        right.text(value, row, f"  ${value:.4f}" if value else "  $0 (the device's owner pays)", va="center")
    right.margins(x=0.3)
    online, batch = per_million.iloc[0], per_million.iloc[1]
    fig.suptitle(f"Batch cost {online / batch:.0f}x less per prediction than online, and made its rows wait "
                 f"{waits.iloc[1] / waits.iloc[0]:.0f}x longer than online's p95")
    return fig


def edge_latency(runs: Mapping[str, TimedRun], *, slo_ms: float, ax: Axes | None = None) -> Axes:
    """Each prediction's time, in the order made, one series per device run (`serving_ways.predict_on_device`).

    In order, not sorted, because under a CPU limit the pattern is the point: runs of fast
    predictions, then one that waits for the next slice of CPU time.
    """
    ax = new_axes(ax)
    worst = {}
    for name, run in runs.items():
        ms = run.seconds * 1000
        ax.plot(np.arange(1, len(ms) + 1), ms, marker=".", ms=3, lw=0.6, label=name)
        worst[name] = percentile(ms, 95)
    slo_line(ax, slo_ms)
    ax.set(yscale="log", xlabel="prediction number (one row each, back to back)", ylabel="time (ms, log scale)")
    ax.set_title("p95: " + ", ".join(f"{name} {p95:.2f} ms" for name, p95 in worst.items()))
    ax.legend(fontsize="small", loc="center right")
    return ax
