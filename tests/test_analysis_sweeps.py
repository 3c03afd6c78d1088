"""analysis.sweeps: where a sweep saturates and the highest rate within an SLO."""

from __future__ import annotations

import pandas as pd
import pytest

from servelab.analysis import sweeps


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
