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
        run = synthetic_result([5.0] * int(2 * rate), meta={"pods": pods})
        run.meta["duration_s"] = 2.0
        runs.append(run)
    return runs


def test_scaling_table_compares_each_count_with_perfect_scaling():
    table = replicas.scaling_table({1: sweep_with_pods([25, 50], 0.4, 1), 2: sweep_with_pods([40, 75], 0.35, 2)})
    assert table.loc[1, "served (req/s)"] == pytest.approx(50) and table.loc[2, "served (req/s)"] == pytest.approx(75)
    assert table.loc[2, "pods' CPU (cores)"] == pytest.approx(0.7)  # two pods, 0.35 core-s each, over 1 s
    assert table.loc[2, "speed-up"] == pytest.approx(1.5) and table.loc[2, "perfect speed-up"] == 2
    assert table.loc[2, "CPU limit of the pods (cores)"] == pytest.approx(2 * 0.5)  # the manifest's 500m


def test_few_and_many_picks_the_corners_of_the_sweep():
    index = pd.MultiIndex.from_product([[1, 4], [20.0, 300.0]], names=["replicas", "offered_rate"])
    by_replicas = pd.DataFrame({"p95": [5.0, 900.0, 6.0, 40.0], "errors": [0, 50, 0, 0]}, index=index)
    costs = pd.DataFrame({"$ per hour": [1.0, 1.0, 4.0, 4.0], "$ per 1M predictions": [0.5, 0.1, 2.0, 0.2],
                          "idle share": [0.9, 0.0, 0.97, 0.5]}, index=index)
    table = replicas.few_and_many(by_replicas, costs)
    assert table.loc["one pod, heavy load", ["replicas", "offered_rate", "p95", "errors"]].tolist() == [1, 300.0, 900.0, 50]
    assert table.loc["many pods, low traffic", ["replicas", "offered_rate", "$ per 1M predictions"]].tolist() == [4, 20.0, 2.0]
