"""analysis.timelines: pod start-up, Ready pods over time and the HPA's lags, from a cluster's timeline."""

from __future__ import annotations

from servelab.analysis import timelines
from servelab.backends import base


def test_pod_startup_splits_created_running_ready():
    events = [
        base.Event(1.0, base.POD_CREATED, "pod/a", "Pending"),
        base.Event(1.5, base.POD_RUNNING, "pod/a", "started"),
        base.Event(4.0, base.POD_READY, "pod/a", "ready"),
        base.Event(5.0, base.POD_CREATED, "pod/b", "Pending"),  # never ready: left out
    ]
    table = timelines.pod_startup(base.events_frame(events))
    assert list(table.index) == ["a"]
    assert table.loc["a"].tolist() == [0.5, 2.5, 3.0]


def hpa_step_timeline(start_s: float = 10.0):
    """A step whose rate rises at 10 s and falls at 30 s (relative): the HPA adds a pod 2 s after the
    rise, it is ready 3 s later, and the HPA removes it 32 s after the fall."""
    events = [
        base.Event(5.0, base.POD_READY, "pod/a", "ready"),
        base.Event(start_s + 5, base.HPA_DECISION, "hpa/h", "", dict(utilization_pct=20.0, target_pct=50.0, current=1, desired=1)),
        base.Event(start_s + 12, base.HPA_DECISION, "hpa/h", "", dict(utilization_pct=90.0, target_pct=50.0, current=1, desired=2)),
        base.Event(start_s + 12, base.SCALED, "deployment/d", "", dict(old=1, new=2)),
        base.Event(start_s + 15, base.POD_READY, "pod/b", "ready"),
        base.Event(start_s + 62, base.SCALED, "deployment/d", "", dict(old=2, new=1)),
        base.Event(start_s + 62, base.POD_TERMINATING, "pod/b", "deleted"),
    ]
    return base.events_frame(events), start_s


def test_step_edges_are_where_the_rate_changes():
    assert timelines.step_edges([(10, 20), (20, 250), (30, 20)]) == [0.0, 10.0, 30.0, 60.0]


def test_ready_pods_start_from_what_was_ready_before_the_run():
    timeline, start_s = hpa_step_timeline()
    ready = timelines.ready_pods(timeline, start_s)
    assert ready.values.tolist() == [[0.0, 1], [15.0, 2], [62.0, 1]]


def test_scaling_delays_measure_each_lag_of_the_hpa():
    timeline, start_s = hpa_step_timeline()
    delays = timelines.scaling_delays(timeline, start_s, [0.0, 10.0, 30.0, 60.0])
    assert delays.tolist() == [2.0, 3.0, 32.0]
