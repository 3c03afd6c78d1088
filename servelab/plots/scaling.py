"""Figures of a cluster's timeline (lab 05): pods starting, and the HPA following a step of traffic."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from servelab.analysis import timelines
from servelab.core.result import Result
from servelab.plots.latency import latency_over_time
from servelab.plots.style import new_axes


def pod_startup(startup: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Each pod's start as two stacked bars: created -> running, running -> ready (`analysis.timelines.pod_startup`)."""
    ax = new_axes(ax, size=(8, 2.2 + 0.5 * len(startup)))
    rows = range(len(startup))
    to_running, to_ready = startup["created → running (s)"], startup["running → ready (s)"]
    ax.barh(rows, to_running, color="tab:grey", label="created → running (process starts)")
    ax.barh(rows, to_ready, left=to_running, color="tab:green", label="running → ready (imports, model, probe)")
    ax.set_yticks(rows, [name.rsplit("-", 1)[-1] for name in startup.index])
    ax.set_ylabel("pod (name ends with)")
    ax.invert_yaxis()
    ax.set_xlabel("seconds since the pod was created")
    total = startup["created → ready (s)"]
    ax.set_title(f"A new pod is Ready after {total.median():.1f} s, "
                 f"{(to_ready / total).median():.0%} of it after its process started")
    ax.figure.legend(loc="outside lower center", ncol=2, fontsize="small")
    return ax


def replicas_over_time(result: Result, timeline: pd.DataFrame, start_s: float, edges: list[float], *,
                       slo_ms: float | None = None) -> Figure:
    """Latency over time above, and below it the ready pods, the HPA's replica count and its
    decisions' CPU utilization, on one time axis, so the scale-up gap lines up with the p95 it causes.

    `timeline` is `cluster.timeline()`, `start_s` the cluster's clock when the run began, `edges`
    where the offered rate changed (`analysis.timelines.step_edges`).
    """
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 7), sharex=True, layout="constrained")
    latency_over_time(result, ax=top, slo_ms=slo_ms)
    util = _replicas(bottom, timeline, start_s)
    for edge in edges[1:-1]:
        for ax in (top, bottom):
            ax.axvline(edge, color="grey", lw=0.8)
    bottom.set_xlabel("time since the run started (s); grey lines: the rate changes")
    up, ready_after, down = timelines.scaling_delays(timeline, start_s, edges).to_numpy()
    bottom.set_title(f"The HPA added pods {up:.1f} s after the step, they were ready {ready_after:.1f} s later; "
                     f"it removed pods {down:.0f} s after the drop")
    handles = [a.get_legend_handles_labels() for a in (bottom, util)]
    bottom.legend(handles[0][0] + handles[1][0], handles[0][1] + handles[1][1], fontsize="small", loc="upper right")
    return fig


def _replicas(ax: Axes, timeline: pd.DataFrame, start_s: float) -> Axes:
    """Ready pods and the replicas the HPA set on `ax`, its decisions' CPU utilization on a twin axis (returned)."""
    decisions, scaled = timelines.hpa_events(timeline, start_s)
    ready = timelines.ready_pods(timeline, start_s)
    ax.step(ready["t"], ready["ready"], where="post", color="tab:green", lw=2, label="ready pods")
    ax.step(scaled["t"], scaled["new"], where="post", color="black", ls=":", label="replicas the HPA set")
    ax.set_ylabel("replicas")
    ax.set_ylim(0, max(4, ready["ready"].max(), scaled["new"].max() if len(scaled) else 0) + 0.5)
    util = ax.twinx()
    util.plot(decisions["t"], decisions["utilization_pct"], "o", color="tab:purple", ms=4,
              label="HPA decision: CPU utilization")
    if len(decisions):
        util.axhline(decisions["target_pct"].iloc[0], color="tab:purple", ls="--", lw=1, label="target utilization")
    util.set_ylabel("CPU utilization (% of request)")
    return util
