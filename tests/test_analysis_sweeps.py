"""analysis.sweeps: where a sweep saturates and the highest rate within an SLO."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from load_fixtures import synthetic_result

from servelab.analysis import findings, sweeps
from servelab.load import Sweep


def sweep_table(p95: list[float], rates: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"p95": p95}, index=pd.Index(rates, name="offered_rate"))


@pytest.mark.parametrize(
    "p95, expected",
    [
        ([16, 15, 17, 21, 80, 300], 300.0),  # turns up at the 5th rate
        ([16, 40, 17, 21, 80, 300], 300.0),  # one noisy step below saturation is ignored
        ([16, 15, 17, 21, 25, 30], None),  # never doubles: not saturated
    ],
)
def test_saturation_is_where_p95_turns_up_for_good(p95, expected):
    assert sweeps.saturation_rate(sweep_table(p95, [25, 50, 100, 200, 300, 400])) == expected


def test_max_rate_within_slo_skips_rates_with_failures():
    table = pd.DataFrame({"p95": [5.0, 20.0, 30.0, 400.0], "errors": [0, 0, 3, 0]}, index=[10.0, 20.0, 30.0, 40.0])
    assert sweeps.max_rate_within_slo(table, slo_ms=50) == 20.0
    assert sweeps.max_rate_within_slo(table, slo_ms=1) == 0.0


def test_p95_window_range_is_each_runs_spread_between_its_own_windows():
    # 400 requests: 100 per window of the run, the second window four times slower than the others.
    latencies = np.r_[np.full(100, 2.0), np.full(100, 8.0), np.full(200, 2.0)]
    noisy, flat = synthetic_result(latencies), synthetic_result(np.full(400, 3.0))
    flat.meta["duration_s"] = 2.0  # 200 req/s
    table = sweeps.p95_window_range(Sweep([noisy, flat]))
    assert list(table.index) == [100.0, 200.0]
    assert table.loc[100.0].tolist() == pytest.approx([2.0, 8.0])
    assert table.loc[200.0].tolist() == pytest.approx([3.0, 3.0])
    assert table.loc[100.0, "p95 window max"] / table.loc[100.0, "p95 window min"] == findings.spread(noisy)
