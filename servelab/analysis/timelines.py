"""Reading a cluster's timeline (`cluster.timeline()`): pods starting, pods Ready over time, and how
long an autoscaler took to follow a step of traffic.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from servelab.analysis.findings import Finding
from servelab.backends import base


def step_edges(steps: list[tuple[float, float]]) -> list[float]:
    """Where a `load.Step`'s rate changes, in seconds from its start (first edge 0, last its end)."""
    return [0.0, *np.cumsum([seconds for seconds, _ in steps]).tolist()]


def pod_startup(timeline: pd.DataFrame) -> pd.DataFrame:
    """Each pod that became Ready: seconds from created to Running and on to Ready, from the timeline."""
    kinds = {base.POD_CREATED: "created", base.POD_RUNNING: "running", base.POD_READY: "ready"}
    events = timeline[timeline["kind"].isin(list(kinds))]
    first = events.groupby(["object", "kind"])["t_s"].min().unstack("kind").rename(columns=kinds)
    first = first.dropna(subset=list(kinds.values()))
    table = pd.DataFrame({
        "created → running (s)": first["running"] - first["created"],
        "running → ready (s)": first["ready"] - first["running"],
        "created → ready (s)": first["ready"] - first["created"],
    })
    table.index = [name.removeprefix("pod/") for name in table.index]
    table.index.name = "pod"
    return table.round(3)


def ready_pods(timeline: pd.DataFrame, start_s: float) -> pd.DataFrame:
    """Ready pods (`ready`) after every readiness change, at `t` seconds since `start_s`, from t=0 on."""
    changes = timeline[timeline.kind.isin([base.POD_READY, base.POD_NOT_READY, base.POD_TERMINATING])]
    ready: set[str] = set()
    rows = []
    for event in changes.itertuples():
        (ready.add if event.kind == base.POD_READY else ready.discard)(event.object)
        rows.append((event.t_s - start_s, len(ready)))
    counts = pd.DataFrame(rows, columns=["t", "ready"])
    before = counts[counts.t < 0]["ready"]
    at_start = pd.DataFrame({"t": [0.0], "ready": [before.iloc[-1] if len(before) else 0]})
    return pd.concat([at_start, counts[counts.t >= 0]], ignore_index=True)


def hpa_events(timeline: pd.DataFrame, start_s: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The HPA's decisions and the scale changes made since `start_s`, each with `t`, seconds since then."""
    return _since(timeline, base.HPA_DECISION, start_s), _since(timeline, base.SCALED, start_s)


def _since(timeline: pd.DataFrame, kind: str, start_s: float) -> pd.DataFrame:
    events = timeline[(timeline.kind == kind) & (timeline.t_s >= start_s)]
    return events.assign(t=events.t_s - start_s)


def scaling_delays(timeline: pd.DataFrame, start_s: float, edges: list[float]) -> pd.Series:
    """How long the HPA took to follow a low-high-low step: scale-up, pod ready, scale-down (s).

    `edges` as from `step_edges`: the rate rises at edges[1] and falls at edges[2].
    """
    scaled = _since(timeline, base.SCALED, start_s)
    first_up = scaled[scaled["new"] > scaled["old"]]["t_s"].min() - start_s
    first_down = scaled[scaled["new"] < scaled["old"]]["t_s"].min() - start_s
    ready = ready_pods(timeline, start_s)
    first_ready = ready[(ready.t > first_up) & (ready.ready > 1)]["t"].min()
    return pd.Series({
        "step up → HPA scales up (s)": first_up - edges[1],
        "HPA scales up → new pod ready (s)": first_ready - first_up,
        "step down → HPA scales down (s)": first_down - edges[2],
    }).round(1)


def hpa_follows_step(delays: pd.Series, sync_period_s: float, startup_s: float) -> Finding:
    """Lab 05: the HPA scales up after the step, within what its loop allows, and its pod gets Ready.

    Threshold: the first scale-up comes after the step and within two sync periods plus a second
    (the CPU window must fill with busy samples, then a sync must run), and the new pod is Ready
    within three times the start-up the first pod took (the busy pod shares the cores it starts on).
    """
    up, ready_after, _ = delays
    limit_up = 2 * sync_period_s + 1.0
    holds = bool(0 <= up <= limit_up and 0 < ready_after <= 3 * startup_s + 1.0)
    return Finding("05-hpa-scales-up",
                   "The HPA adds a pod soon after the step up, and the pod is Ready a start-up later.", holds,
                   f"scaled up {up:.1f} s after the step (allowed: 0 to {limit_up:g} s, two syncs and a second); "
                   f"new pod Ready {ready_after:.1f} s later (allowed: up to 3 x the {startup_s:.1f} s the first pod took)",
                   "The step did not raise utilization above the target (the machine changed since the "
                   "calibration: run the parameters cell with recalibrate=True), or the machine was too busy to start a pod.")


def hpa_waits_to_scale_down(delays: pd.Series, window_s: float, sync_period_s: float) -> Finding:
    """Lab 05: the HPA keeps its pods through the scale-down window after the step down, then removes them.

    Threshold: the first scale-down comes no earlier than the window (less one sync, since the window
    counts from the last high recommendation, which came up to a sync before the step down).
    """
    down = delays.iloc[2]
    holds = bool(down >= window_s - sync_period_s)
    return Finding("05-hpa-waits-to-scale-down",
                   "After the step down the HPA keeps its pods for the stabilization window, then scales down.",
                   holds, f"scaled down {down:.1f} s after the step down; window {window_s:g} s, sync {sync_period_s:g} s"
                   if down == down else "no scale-down within the run",
                   "Make the last step longer than the scale-down window plus two syncs, so the scale-down happens "
                   "while the run lasts.")
