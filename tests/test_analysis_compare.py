"""analysis.compare: runs and pods side by side, with their cost."""

from __future__ import annotations

import pandas as pd
import pytest

from servelab import lab
from servelab.analysis import compare
from servelab.core import cost


def test_pod_cost_table_prices_an_idle_pod_by_its_request():
    price = cost.load_pricing()
    pods = [dict(name="a", start_s=0.0, end_s=3600.0, cpu_request_cores=0.5, memory_request_gib=0.25, cpu_used_core_s=0.0)]
    table = compare.pod_cost_table(pods, price)
    hourly = 0.5 * price.cpu_core_hour + 0.25 * price.memory_gib_hour
    assert table.loc["a", "$ per hour"] == pytest.approx(hourly)
    assert table.loc["all pods", f"$ per month ({lab.HOURS_PER_MONTH} h)"] == pytest.approx(hourly * lab.HOURS_PER_MONTH)


def test_step_comparison_counts_late_and_failed_requests_and_mean_pods():
    from load_fixtures import synthetic_result

    pod = dict(name="a", start_s=0.0, end_s=1.0, cpu_request_cores=0.5, memory_request_gib=0.25, cpu_used_core_s=0.1)
    fast = synthetic_result([5.0] * 100, meta={"pods": [pod]})
    slow = synthetic_result([5.0] * 50 + [80.0] * 40 + [5.0] * 10, status=[200] * 90 + [500] * 10,
                            meta={"pods": [pod, {**pod, "name": "b"}]})
    table = compare.step_comparison({"fast": fast, "slow": slow}, cost.load_pricing(), peak=(0.0, 1.0), slo_ms=50)
    assert table.loc["fast", "over 50 ms or failed (%)"] == 0
    assert table.loc["slow", "over 50 ms or failed (%)"] == pytest.approx(50.0)  # 40 late + 10 failed of 100
    assert table.loc["slow", "failed"] == 10
    assert table.loc["fast", "mean pods"] == pytest.approx(1.0) and table.loc["slow", "mean pods"] == pytest.approx(2.0)
    assert table.loc["slow", "$ per 1M predictions"] > table.loc["fast", "$ per 1M predictions"] > 0


def test_latency_and_cost_puts_the_pods_request_beside_its_price():
    from load_fixtures import synthetic_result

    def run(cpu: float):
        pods = [dict(name="p", start_s=0.0, end_s=1.0, cpu_request_cores=cpu, memory_request_gib=0.25, cpu_used_core_s=0.1)]
        return synthetic_result([5.0] * 100, meta={"pods": pods})

    table = compare.latency_and_cost({"small": run(0.5), "big": run(2.0)}, cost.load_pricing())
    assert table["CPU request (cores)"].tolist() == [0.5, 2.0]
    assert table.loc["big", "$ per 1M predictions"] > 3 * table.loc["small", "$ per 1M predictions"]
    assert table.loc["big", "idle share"] > table.loc["small", "idle share"]


@pytest.mark.parametrize(("one", "hpa", "most", "holds"), [
    (90.2, 45.2, 13.3, True),  # one pod late in all its peak; the HPA late until its pods were Ready
    (90.0, 70.0, 5.0, False),  # the HPA nearly as late: not an effect
    (15.0, 6.0, 0.0, False),  # 2.5x, but 9 points
    (16.0, 6.0, 0.0, True),
])
def test_one_fixed_pod_is_late_only_by_a_margin_over_each_other_way(one, hpa, most, holds):
    column = "over 50 ms or failed (%)"
    table = pd.DataFrame({column: [one, hpa, most]}, index=["static, 1 replica", "HPA", "static, 4 replicas"])
    found = compare.fixed_pod_late(table, 50, "static, 1 replica", ["HPA", "static, 4 replicas"])
    assert found.holds is holds and "1.5 times as many and 10 points more" in found.evidence
