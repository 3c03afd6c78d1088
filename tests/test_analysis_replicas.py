"""analysis.replicas: replica counts against perfect scaling, and the lesson's two scaling mistakes."""

from __future__ import annotations

import pandas as pd
import pytest

from servelab.analysis import replicas


def sweep_with_pods(served: list[float], cpu_core_s: float, n_pods: int):
    """Runs of 2 s each that achieve `served` req/s, with `n_pods` pods alive for 1 s of it."""
    from load_fixtures import synthetic_result

    pods = [dict(name=f"p{i}", start_s=0.0, end_s=1.0, cpu_request_cores=0.5, memory_request_gib=0.25,
                 cpu_used_core_s=cpu_core_s) for i in range(n_pods)]
    runs = []
    for rate in served:
        run = synthetic_result([5.0] * int(2 * rate), meta={"pods": pods, "cpu_limit_cores": 0.5})
        run.meta["duration_s"] = 2.0
        runs.append(run)
    return runs


def test_scaling_table_compares_each_count_with_perfect_scaling():
    table = replicas.scaling_table({1: sweep_with_pods([25, 50], 0.4, 1), 2: sweep_with_pods([40, 75], 0.35, 2)})
    assert table.loc[1, "served (req/s)"] == pytest.approx(50) and table.loc[2, "served (req/s)"] == pytest.approx(75)
    assert table.loc[2, "pods' CPU (cores)"] == pytest.approx(0.7)  # two pods, 0.35 core-s each, over 1 s
    assert table.loc[2, "speed-up"] == pytest.approx(1.5) and table.loc[2, "perfect speed-up"] == 2
    assert table.loc[2, "CPU limit of the pods (cores)"] == pytest.approx(2 * 0.5)  # the runs' own limit


def run_at(rate: float, latencies_ms: list[float], status=None):
    from load_fixtures import synthetic_result

    return synthetic_result(latencies_ms, status=status, meta={"schedule": {"rate": rate}})


def two_counts():
    """1 and 4 replicas at 20 and 300 req/s: one pod drowns at 300, four keep up."""
    return {1: [run_at(20, [5.0] * 100), run_at(300, [900.0] * 80 + [5.0] * 20, status=[503] * 30 + [200] * 70)],
            4: [run_at(20, [6.0] * 100), run_at(300, [40.0] * 95 + [90.0] * 5)]}


def cost_table():
    index = pd.MultiIndex.from_product([[1, 4], [20.0, 300.0]], names=["replicas", "offered_rate"])
    return pd.DataFrame({"$ per hour": [1.0, 1.0, 4.0, 4.0], "$ per 1M predictions": [0.5, 0.1, 2.0, 0.2],
                         "idle share": [0.9, 0.0, 0.97, 0.5]}, index=index)


def test_few_and_many_picks_the_corners_of_the_sweep():
    table = replicas.few_and_many(two_counts(), cost_table(), slo_ms=50)
    heavy = table.loc["one pod, heavy load"]
    assert heavy[["replicas", "offered_rate", "errors"]].tolist() == [1, 300.0, 30]
    assert heavy["over 50 ms or failed (%)"] == pytest.approx(80.0)  # 30 failed + 50 answered late of 100
    assert table.loc["more pods, heavy load", "over 50 ms or failed (%)"] == pytest.approx(5.0)
    assert table.loc["many pods, low traffic", ["replicas", "offered_rate", "$ per 1M predictions"]].tolist() == [4, 20.0, 2.0]


def test_one_pod_overloaded_needs_a_wide_gap_in_late_requests():
    found = replicas.one_pod_overloaded(two_counts(), slo_ms=50)
    assert found.holds and "80% over 50 ms or failed with 1 pod, 5% with 4" in found.evidence
    close = {1: [run_at(300, [60.0] * 8 + [5.0] * 92)], 4: [run_at(300, [60.0] * 5 + [5.0] * 95)]}
    assert not replicas.one_pod_overloaded(close, slo_ms=50).holds  # 8% against 5%: not an effect


def test_many_pods_idle_is_about_price_and_not_about_speed():
    found = replicas.many_pods_idle(two_counts(), cost_table())
    assert found.holds and "x4.0" in found.evidence
    faster = two_counts()
    faster[4][0] = run_at(20, [1.0] * 100)  # four pods five times faster: that would contradict the claim
    assert not replicas.many_pods_idle(faster, cost_table()).holds


def capacity(cores: float, machine_cpu_ms: float, request: float = 0.5):
    from servelab.analysis.calibration import Capacity

    return Capacity(model="large", slo_ms=50, rate=200, cpu_ms=2.0, machine_cpu_ms=machine_cpu_ms, cpu_limit=0.5,
                    cpu_request=request, limits="cgroup-v1", limits_note="", cores=cores, backend="local",
                    seconds=10, steps=pd.DataFrame())


def test_plan_keeps_what_the_machine_can_hold_and_says_why_not():
    roomy = replicas.plan(capacity(cores=2, machine_cpu_ms=2.5), [1, 2, 4], [20, 300, 500])
    assert (roomy.counts, roomy.rates, roomy.notes) == ([1, 2, 4], [20, 300, 500], [])
    small = replicas.plan(capacity(cores=1, machine_cpu_ms=2.5), [1, 2, 4], [20, 300, 500])
    assert small.counts == [1, 2] and "stay Pending" in small.notes[0]
    assert small.rates == [20, 300] and "pushes about 340 req/s" in small.notes[1]  # 0.85 x 1 core / 2.5 ms
