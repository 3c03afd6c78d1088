"""Plot helpers: they draw what they are given, with units on the axes and the finding in the title."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from load_fixtures import synthetic_result  # noqa: E402

from servelab import plots  # noqa: E402
from servelab.load import Sweep  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def sweep_of(p95s_ms, errors=()):
    """Runs at 100, 200, ... req/s whose latencies are flat at the given value."""
    runs = []
    for i, latency in enumerate(p95s_ms):
        status = [200] * 95 + ([500] * 5 if i in errors else [200] * 5)
        r = synthetic_result([latency] * 100, status=status)
        r.meta["duration_s"] = 100 / (100 * (i + 1))  # offered rate 100 * (i + 1)
        runs.append(r)
    return Sweep(runs)


def test_latency_over_time_marks_failures_and_states_percentiles():
    latencies = np.r_[np.full(180, 2.0), np.full(20, 150.0)]
    status = [200] * 195 + [0] * 5
    ax = plots.latency_over_time(synthetic_result(latencies, status=status), slo_ms=50)
    assert ax.get_xlabel() == "intended send time since start (s)"
    assert ax.get_ylabel() == "latency (ms, log scale)"
    title = ax.get_title()
    assert title.startswith("open loop at 100 req/s: p50 2.0 ms, p99 150.0 ms")
    assert "worst second p95 150 ms at t=1 s" in title and "5 failed" in title
    assert any("failed (5)" in t.get_text() for t in ax.get_legend().get_texts())


@pytest.mark.parametrize("p95s, slo, expected", [
    ([2, 3, 40, 400], 50, "p95 meets the 50 ms SLO up to 300 req/s, then misses it"),
    ([2, 3, 4], 50, "p95 meets the 50 ms SLO at every rate tried (up to 300 req/s)"),
    ([80, 90], 50, "p95 misses the 50 ms SLO already at 100 req/s"),
    ([2, 20], None, "p95 grows from 2.0 ms at 100 req/s to 20.0 ms at 200 req/s"),
])
def test_latency_vs_rate_title_states_the_finding(p95s, slo, expected):
    ax = plots.latency_vs_rate(sweep_of(p95s), slo_ms=slo)
    assert ax.get_title() == expected
    assert ax.get_xlabel() == "offered rate (requests/s)"
    assert ax.get_ylabel() == "latency (ms, log scale)"
    assert len(ax.get_lines()[0].get_xdata()) == len(p95s)


def test_a_run_with_failures_does_not_meet_the_slo():
    ax = plots.latency_vs_rate(sweep_of([2, 3, 4], errors={1}), slo_ms=50)
    assert ax.get_title() == "p95 meets the 50 ms SLO up to 100 req/s, then misses it"
    assert any("failures" in t.get_text() for t in ax.get_legend().get_texts())


def test_latency_cdf_compares_tails():
    fast, slow = synthetic_result([1.0] * 100), synthetic_result([1.0] * 90 + [64.0] * 10)
    ax = plots.latency_cdf({"closed loop": fast, "open loop": slow})
    assert ax.get_title() == "closed loop p99 1.0 ms vs open loop p99 64.0 ms"
    assert ax.get_xlabel() == "latency (ms, log scale)"
    assert ax.get_lines()[0].get_ydata()[-1] == 1.0


def test_a_second_without_successes_leaves_a_gap_in_the_p95_line():
    status = [200] * 100 + [0] * 100 + [200] * 100  # the middle second failed entirely
    ax = plots.latency_over_time(synthetic_result([3.0] * 300, status=status))
    values = ax.patches[0].get_data().values  # the p95 stairs
    assert len(values) == 3 and np.isnan(values[1]) and values[0] == pytest.approx(3.0)


def test_replicas_over_time_titles_the_scaling_delays():
    from test_analysis_timelines import hpa_step_timeline

    timeline, start_s = hpa_step_timeline()
    fig = plots.replicas_over_time(synthetic_result([5.0] * 100), timeline, start_s, [0.0, 10.0, 30.0, 60.0], slo_ms=50)
    top, bottom, _ = fig.axes
    assert bottom.get_title() == "The HPA added pods 2.0 s after the step, they were ready 3.0 s later; it removed pods 32 s after the drop"
    assert bottom.get_ylabel() == "replicas" and "latency" in top.get_ylabel()


def test_p95_and_cost_states_how_much_more_the_dear_option_costs():
    import pandas as pd

    table = pd.DataFrame({"p95 in the peak (ms)": [10.0, 400.0], "$ per 1M predictions": [0.3, 0.1]}, index=["four", "hpa"])
    fig = plots.p95_and_cost(table, slo_ms=50, cheap="hpa", dear="four")
    assert fig._suptitle.get_text() == "'four' cost 3.0x what 'hpa' cost per prediction"
    assert fig.axes[0].get_xlabel() == "p95 during the peak (ms, log scale)"


def test_p95_by_replicas_reads_off_each_counts_limit():
    ax = plots.p95_by_replicas({1: sweep_of([5, 80, 400]), 2: sweep_of([5, 6, 90], errors=(1,))}, slo_ms=50)
    assert ax.get_title() == "p95 within the SLO up to 100, 100 req/s with 1, 2 replicas"
    assert len(ax.get_lines()) == 3  # two curves and the SLO


def test_p95_by_replicas_shades_each_counts_noise_band_in_its_colour():
    from servelab.analysis import sweeps

    by_count = {1: sweep_of([5, 80, 400]), 2: sweep_of([5, 6, 90])}
    spread = {n: sweeps.p95_window_range(s) for n, s in by_count.items()}
    ax = plots.p95_by_replicas(by_count, slo_ms=50, spread=spread)
    curves, bands = ax.get_lines()[:2], ax.collections
    assert [tuple(band.get_facecolor()[0][:3]) for band in bands] == [
        matplotlib.colors.to_rgb(curve.get_color()) for curve in curves]
    assert bands[0].get_paths()[0].get_extents().x0 == pytest.approx(100)  # from the lowest offered rate


def test_cost_by_replicas_says_how_much_more_idle_replicas_cost():
    import pandas as pd

    index = pd.MultiIndex.from_product([[1, 4], [20.0, 300.0]], names=["replicas", "offered_rate"])
    costs = pd.DataFrame({"$ per hour": [0.1, 0.1, 0.4, 0.4], "$ per 1M predictions": [1.0, 0.1, 4.0, 0.4]}, index=index)
    ax = plots.cost_by_replicas(costs)
    assert ax.get_title() == "At 20 req/s a prediction costs 4.0x more with 4 replicas than with 1"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["1 replica ($0.100/h)", "4 replicas ($0.400/h)"]


# -- Lab 06: online, batch and edge --------------------------------------------------------------


def test_serving_ways_titles_the_price_and_the_wait_of_batch_against_online():
    import pandas as pd

    table = pd.DataFrame({"p95 (ms)": [5.0, float("nan"), 2.0], "time to last result (s)": [float("nan"), 1.0, float("nan")],
                          "$ per 1M predictions": [0.1, 0.02, 0.0]}, index=["online", "batch", "edge"])
    fig = plots.serving_ways(table)
    assert fig._suptitle.get_text() == "Batch cost 5x less per prediction than online, and made its rows wait 200x longer than online's p95"


def test_p95_by_setting_reads_off_each_settings_limit():
    ax = plots.p95_by_setting({"plain": sweep_of([2, 900]), "batched": sweep_of([8, 20])}, slo_ms=50)
    assert ax.get_title() == "p95 within the SLO up to 100 req/s plain; 200 req/s batched"


def test_edge_latency_draws_each_prediction_in_order():
    from types import SimpleNamespace

    runs = {"tiny": SimpleNamespace(seconds=np.full(20, 0.00002)), "large": SimpleNamespace(seconds=np.r_[np.full(19, 0.002), 0.09])}
    ax = plots.edge_latency(runs, slo_ms=50)
    assert ax.get_title() == "p95: tiny 0.02 ms, large 6.40 ms"
    assert len(ax.lines[1].get_ydata()) == 20


def small_day():
    """A compressed day for two architectures, from the simulator (fast: a few thousand requests)."""
    from pathlib import Path

    from servelab import architectures, sim
    from servelab.core import cost, schedules

    manifest = Path(__file__).resolve().parents[1] / "cluster" / "model-serving-hpa.yaml"
    traffic = schedules.Diurnal(mean_rate=60, peak_to_trough=4, duration=480, period=480)
    options = architectures.candidates(manifest, static=(1, 2), deferred_share=0.3, period_s=480)[:2]
    return architectures.simulate_day(traffic, sim.ServiceTimes.exponential(0.01), options, slo_ms=100,
                                      price=cost.load_pricing(), startup_s=2.0, window_s=20)


def test_day_by_architecture_counts_the_architectures_within_the_slo_all_day():
    fig = plots.day_by_architecture(small_day())
    top, bottom = fig.axes[0], fig.axes[1]
    assert top.get_title().endswith("architectures keep p95 within 100 ms in every window of the day")
    assert "of 2 architectures" in top.get_title()
    assert bottom.get_xlabel() == "hour of the day" and bottom.get_xlim()[1] <= 24.5
    assert "'static, 2 pods' holds the most" in bottom.get_title()


def test_predicted_vs_measured_titles_both_p95s_and_the_error():
    from servelab import sim
    from servelab.core import schedules

    traffic = schedules.Constant(50, 20)
    measured = sim.simulate(traffic, sim.ServiceTimes.exponential(0.004), policy=sim.Static(1))
    predicted = sim.simulate(traffic, sim.ServiceTimes.exponential(0.008), policy=sim.Static(2))
    fig = plots.predicted_vs_measured(measured, predicted, window_s=2.0, slo_ms=50)
    title = fig.axes[0].get_title()
    assert title.startswith("p95 over the run: measured ") and "predicted" in title and "%)" in title
    assert fig.axes[1].get_ylabel() == "pods paid for (mean per window)"
