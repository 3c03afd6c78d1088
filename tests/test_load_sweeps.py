"""A rate sweep: one open-loop run per rate and one summary row per run."""


from servelab import load
from servelab.load import Sweep


def test_sweep_runs_each_rate_and_tabulates(fixture_url, tmp_path):
    results = load.sweep(f"{fixture_url}/ok/v1/models/m:predict", rates=[20, 60], duration=0.5, arrivals="even",
                         progress=False)
    table = results.summary()
    assert list(table.index) == [20.0, 60.0]
    assert (table["errors"] == 0).all() and list(table["ok"]) == [10, 30]
    assert {"p50", "p95", "p99", "achieved_rate", "lag_p99", "generator_limited"} <= set(table.columns)
    assert len(results.to_frame()) == 40
    again = Sweep.load(results.save(tmp_path / "sweep"))
    assert again.summary()["ok"].tolist() == [10, 30]


def test_sweep_sends_random_arrivals_by_default_indexed_by_the_planned_rate(fixture_url):
    results = load.sweep(f"{fixture_url}/ok/v1/models/m:predict", rates=[200, 400], duration=1.0, progress=False)
    table = results.summary()
    assert list(table.index) == [200.0, 400.0]
    for result, rate in zip(results, [200, 400]):
        assert result.meta["schedule"]["kind"] == "poisson"
        gaps = result.frame.intended_s.diff().dropna()
        assert gaps.std() > 0.5 * gaps.mean(), "exponential gaps vary about as much as their mean; even ones do not"
        assert abs(len(result.frame) - rate) < 5 * rate ** 0.5  # a Poisson count: within 5 standard deviations
    again = load.sweep(f"{fixture_url}/ok/v1/models/m:predict", rates=[200], duration=1.0, progress=False)
    assert again[0].frame.intended_s.equals(results[0].frame.intended_s), "the same seed draws the same arrivals"
