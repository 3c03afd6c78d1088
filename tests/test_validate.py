"""servelab.validate's tables on simulated runs (no cluster): the live check is tests/test_sim_live.py."""

from __future__ import annotations

import numpy as np
import pytest

from servelab import sim, validate
from servelab.core import cost, schedules

SERVICE = sim.ServiceTimes.empirical(np.linspace(0.002, 0.006, 101), busy_s=np.full(101, 0.003))
STEP = schedules.Step([(10, 50), (10, 200)])


def run(seed: int = 0):
    return sim.simulate(STEP, SERVICE, seed=seed)


def test_a_run_against_itself_has_no_error():
    table = validate.compare(run(), run())
    assert list(table.columns) == ["measured", "predicted", "error_pct"]
    assert {"p50_ms", "p95_ms", "p99_ms", "ok", "errors", "dollars", "per_million", "idle_share"} <= set(table.index)
    assert table["error_pct"].drop("errors").abs().max() == 0
    assert np.isnan(table.at["errors", "error_pct"])  # nothing failed: no % of zero


def test_error_is_prediction_minus_measurement_in_percent():
    live, predicted = run(), sim.simulate(STEP, SERVICE, policy=sim.Static(2))
    table = validate.compare(live, predicted)
    assert table.at["dollars", "predicted"] == pytest.approx(2 * table.at["dollars", "measured"])
    assert table.at["dollars", "error_pct"] == pytest.approx(100.0)


def test_window_keeps_its_requests_and_prices_its_pod_time():
    result = run()
    second = validate.window(result, 10.0, 20.0)
    assert len(second.frame) == 2000 and second.frame["intended_s"].between(0, 10).all()
    (pod,) = second.meta["pods"]
    assert (pod["start_s"], pod["end_s"], pod["cpu_used_core_s"]) == (0.0, 10.0, None)
    report = cost.cost_of_result(second)
    price = cost.load_pricing()
    assert report.dollars == pytest.approx(10 / 3600 * (0.5 * price.cpu_core_hour + 0.25 * price.memory_gib_hour))


def test_by_step_has_one_row_per_step():
    table = validate.by_step(run(), run(seed=1), STEP, capacity_rps=1 / 0.003)
    assert list(table.index) == [1, 2] and list(table["rate_rps"]) == [50, 200]
    assert list(table["load"]) == pytest.approx([0.15, 0.6])
    assert (table["per_million_error_pct"] == 0).all() and (table["errors"] == 0).all()
    assert table["p95_error_pct"].abs().max() < 20  # other service-time draws, same distribution
