"""Reading a cluster's timeline (`cluster.timeline()`): pods starting, pods Ready over time, and how
long an autoscaler took to follow a step of traffic.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

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


def scaling_delays(timeline: pd.DataFrame, start_s: float, edges: list[float]) -> pd.Series:
    """How long the HPA took to follow a low-high-low step: scale-up, pod ready, scale-down (s).

    `edges` as from `step_edges`: the rate rises at edges[1] and falls at edges[2].
    """
    scaled = timeline[(timeline.kind == base.SCALED) & (timeline.t_s >= start_s)]
    first_up = scaled[scaled["new"] > scaled["old"]]["t_s"].min() - start_s
    first_down = scaled[scaled["new"] < scaled["old"]]["t_s"].min() - start_s
    ready = ready_pods(timeline, start_s)
    first_ready = ready[(ready.t > first_up) & (ready.ready > 1)]["t"].min()
    return pd.Series({
        "step up → HPA scales up (s)": first_up - edges[1],
        "HPA scales up → new pod ready (s)": first_ready - first_up,
        "step down → HPA scales down (s)": first_down - edges[2],
    }).round(1)
