"""A rate sweep: one open-loop run per rate and one summary row per run."""

from load_fixtures import fixture_url  # noqa: F401 (a fixture)

from servelab import load
from servelab.load import Sweep


def test_sweep_runs_each_rate_and_tabulates(fixture_url, tmp_path):  # noqa: F811
    results = load.sweep(f"{fixture_url}/ok/v1/models/m:predict", rates=[20, 60], duration=0.5, progress=False)
    table = results.summary()
    assert list(table.index) == [20.0, 60.0]
    assert (table["errors"] == 0).all() and list(table["ok"]) == [10, 30]
    assert {"p50", "p95", "p99", "achieved_rate", "lag_p99", "generator_limited"} <= set(table.columns)
    assert len(results.to_frame()) == 40
    again = Sweep.load(results.save(tmp_path / "sweep"))
    assert again.summary()["ok"].tolist() == [10, 30]
