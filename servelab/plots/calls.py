"""Figures of timed calls (lab 01, 02): how latencies spread, and where a request's time goes."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.axes import Axes
from numpy.typing import ArrayLike

from servelab.analysis.ways import model_share
from servelab.core.result import percentile
from servelab.plots.style import new_axes


def latency_histogram(values: ArrayLike, ax: Axes | None = None, *, unit: str = "ms",
                      what: str = "requests") -> Axes:
    """A distribution of measured latencies with p50/p95/p99 marked; the title gives p99 / p50."""
    ax = new_axes(ax)
    values = np.asarray(values, dtype=float)
    p50, p95, p99 = percentile(values, [50, 95, 99])
    ax.hist(values, bins=np.geomspace(values.min(), values.max(), 60), color="tab:blue", alpha=0.7)
    for value, name, style in ((p50, "p50", "-"), (p95, "p95", "--"), (p99, "p99", ":")):
        ax.axvline(value, color="black", ls=style, label=f"{name} {value:.1f} {unit}")
    ax.set_xscale("log")
    ax.set_xlabel(f"latency ({unit}, log scale)")
    ax.set_ylabel("number of calls")
    ax.set_title(f"{what}: p99 is {p99 / p50:.1f}x p50")
    ax.legend(fontsize="small")
    return ax


def latency_breakdown(parts: Mapping[str, Mapping[str, float]], ax: Axes | None = None, *,
                      unit: str = "ms") -> Axes:
    """Stacked bars, one per way of calling the model, split into named parts ("model" among them).

    The title gives the model's share of the slowest way's total.
    """
    ax = new_axes(ax, size=(8, 1.5 + 0.7 * len(parts)))
    colours: dict[str, str] = {}
    for row, pieces in enumerate(parts.values()):
        left = 0.0
        for piece, value in pieces.items():
            new = piece not in colours
            colour = colours.setdefault(piece, f"C{len(colours)}")
            ax.barh(row, value, left=left, color=colour, label=piece if new else None)
            left += value
        ax.text(left, row, f"  {left:.3f} {unit}", va="center")
    ax.set_yticks(range(len(parts)), list(parts))
    ax.invert_yaxis()
    ax.margins(x=0.25)
    ax.set_xlabel(f"median time per prediction ({unit})")
    ax.set_title(f"The model is {model_share(parts):.0%} of a request's time over HTTP; the rest is serving overhead")
    ax.legend(loc="upper right", fontsize="small")
    return ax
