"""What every figure shares: a new Axes when none is given, the SLO line, and tick labels on log axes."""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.axis import Axis

PERCENTILE_NAMES = {"p50": "p50 (median)", "p90": "p90", "p95": "p95", "p99": "p99", "p999": "p99.9"}


def new_axes(ax: Axes | None, size: tuple[float, float] = (8, 4)) -> Axes:
    """`ax`, or the Axes of a new figure of `size` inches."""
    if ax is None:
        _, ax = plt.subplots(figsize=size, layout="constrained")
    return ax


def slo_line(ax: Axes, slo_ms: float, ls: str = "--", vertical: bool = False) -> None:
    """The SLO as a red line across the plot, labelled for the legend."""
    draw = ax.axvline if vertical else ax.axhline
    draw(slo_ms, color="tab:red", ls=ls, lw=1, label=f"SLO {slo_ms:g} ms")


def label_log_ticks(axis: Axis, prefix: str = "") -> None:
    """Plain numbers on a log axis (10, not 10^1), and the 2s and 5s between the powers of ten labelled too."""
    axis.set_major_formatter(plt.FuncFormatter(lambda value, _: f"{prefix}{value:g}"))
    axis.set_minor_formatter(plt.FuncFormatter(
        lambda value, _: f"{prefix}{value:g}" if f"{value:.0e}"[0] in "25" else ""))
