"""architectures: a simulated day per architecture, the arrivals it uses, and the live check's pieces."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml

from servelab import architectures, sim
from servelab.backends import base
from servelab.core import cost, schedules
from servelab.core.result import COLUMNS, Result

HPA_MANIFEST = Path(__file__).resolve().parents[1] / "cluster" / "model-serving-hpa.yaml"
SERVICE = sim.ServiceTimes.exponential(0.01)  # 10 ms: one pod serves about 100 req/s
DAY_S = 2400.0  # a day compressed into 40 minutes keeps the tests fast
SLO_MS = 100.0


@pytest.fixture(scope="module")
def day():
    """A compressed day peaking at ~130 req/s: more than one pod can take, less than two."""
    return simulate_small_day(static=(1, 2))


def simulate_small_day(static: tuple[int, ...], progress: bool = False) -> architectures.Day:
    traffic = schedules.Diurnal(mean_rate=80, peak_to_trough=4, duration=DAY_S, period=DAY_S)
    options = architectures.candidates(HPA_MANIFEST, static=static, deferred_share=0.3, period_s=DAY_S)
    return architectures.simulate_day(traffic, SERVICE, options, slo_ms=SLO_MS, price=cost.load_pricing(),
                                      startup_s=5.0, window_s=DAY_S / 24, progress=progress)


def test_candidates_are_static_counts_the_hpa_and_the_hpa_with_a_nightly_job():
    options = architectures.candidates(HPA_MANIFEST, static=(1, 3), deferred_share=0.25, period_s=DAY_S)
    assert [o.name for o in options] == ["static, 1 pod", "static, 3 pods", "HPA, 1 to 4 pods",
                                         "HPA + nightly batch (25%)"]
    assert options[1].policy == sim.Static(3)
    hybrid = options[-1]
    assert isinstance(hybrid.policy, sim.Autoscaled) and hybrid.deferred_share == 0.25
    assert hybrid.batch.period_s == DAY_S and hybrid.batch.run_at_s == pytest.approx(DAY_S / 12)  # 02:00


def test_a_deferred_share_needs_a_batch_job_and_a_sensible_share():
    with pytest.raises(ValueError, match="needs a batch job"):
        architectures.Architecture("x", sim.Static(1), deferred_share=0.2)
    with pytest.raises(ValueError, match="0 <= share < 1"):
        architectures.Architecture("x", sim.Static(1), deferred_share=1.0, batch=sim.Batch())


def test_a_far_region_and_the_edge_join_the_candidates_when_asked():
    device = architectures.OnDevice(np.full(10, 0.006), per_million=7.0)
    options = architectures.candidates(HPA_MANIFEST, static=(1,), period_s=DAY_S, far=(150.0, 15.0), device=device)
    assert [o.name for o in options][-2:] == ["HPA, 1 to 4 pods, far region (+150 ms)", "edge (on each user's device)"]
    far, edge = options[-2:]
    assert far.policy == options[1].policy and (far.round_trip_ms, far.jitter_ms) == (150.0, 15.0)
    assert edge.policy is None and edge.device is device


def test_an_architecture_serves_from_pods_or_on_devices_and_its_round_trip_is_sensible():
    with pytest.raises(ValueError, match="one of the two"):
        architectures.Architecture("x", None)
    with pytest.raises(ValueError, match="one of the two"):
        architectures.Architecture("x", sim.Static(1), device=architectures.OnDevice(np.ones(3), 1.0))
    with pytest.raises(ValueError, match="0 <= J <= R"):
        architectures.Architecture("x", sim.Static(1), round_trip_ms=20.0, jitter_ms=30.0)


def test_far_from_its_users_a_pod_answers_a_round_trip_later_for_the_same_bill_and_the_edge_pays_for_devices():
    traffic = schedules.Diurnal(mean_rate=50, peak_to_trough=4, duration=600.0, period=600.0)
    device = architectures.OnDevice(np.linspace(0.004, 0.008, 50), per_million=7.0)
    options = [architectures.Architecture("near", sim.Static(1)),
               architectures.Architecture("far", sim.Static(1), round_trip_ms=150.0, jitter_ms=15.0),
               architectures.Architecture("edge", None, device=device)]
    day = architectures.simulate_day(traffic, SERVICE, options, slo_ms=SLO_MS, price=cost.load_pricing(),
                                     startup_s=5.0, window_s=25.0)
    near, far, edge = (day.table.loc[name] for name in ("near", "far", "edge"))
    assert far["p95 (ms)"] - near["p95 (ms)"] == pytest.approx(150.0, abs=15.0)
    assert far["$ per day"] == near["$ per day"] and far[f"over {SLO_MS:g} ms (%)"] > 90
    assert edge["mean pods"] == 0 and (day.pods["edge"] == 0).all() and pd.isna(edge["idle share"])
    assert 4.0 <= edge["p95 (ms)"] <= 8.0 and day.p95_ms["edge"].between(4.0, 8.0).all()
    assert edge["$ per 1M"] == 7.0
    assert edge["$ per day"] == pytest.approx(7.0 * day.requests / 1e6 * architectures.DAY_S / 600.0)


def test_random_arrivals_follow_the_curve_and_vary_between_seeds():
    traffic = schedules.Diurnal(mean_rate=50, peak_to_trough=4, duration=1000, period=1000)
    times = architectures.random_arrivals(traffic, seed=1)
    assert np.all(np.diff(times) >= 0) and times.min() >= 0 and times.max() < 1000
    assert abs(len(times) - 50_000) < 5 * np.sqrt(50_000)
    noon = np.sum((times > 400) & (times < 600))
    midnight = np.sum(times < 100) + np.sum(times > 900)
    assert noon > 2.5 * midnight  # the rate at noon is up to 4x the rate at midnight
    gaps = np.diff(times[(times > 450) & (times < 550)])
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.1)  # exponential gaps, not even spacing
    assert not np.array_equal(times[:100], architectures.random_arrivals(traffic, seed=2)[:100])


def test_the_day_table_has_a_row_per_architecture_and_its_figures(day):
    table = day.table
    assert list(table.index) == ["static, 1 pod", "static, 2 pods", "HPA, 1 to 4 pods", "HPA + nightly batch (30%)"]
    assert (table["$ per day"] > 0).all() and (table["p95 (ms)"] > 0).all()
    # A static count pays for its pods whatever the traffic: two cost twice one (when one keeps up at night).
    assert table.loc["static, 2 pods", "$ per day"] == pytest.approx(2 * 0.5 * 24 * (
        cost.load_pricing().cpu_core_hour + 0.5 * cost.load_pricing().memory_gib_hour), rel=0.01)
    assert table.loc["static, 1 pod", architectures.PEAK_HOUR] > SLO_MS > table.loc["static, 2 pods", architectures.PEAK_HOUR]
    # 80 req/s on average at a 50 % CPU target is 1.6 pods' worth; whole pods and the scale-down window
    # round that up, and the maximum is never held all day.
    assert 1.6 <= table.loc["HPA, 1 to 4 pods", "mean pods"] < 2.5
    assert table["batch wait (h)"].notna().sum() == 1
    assert 0 < table.loc["HPA + nightly batch (30%)", "batch wait (h)"] < 25  # a day, plus the job's start and queue
    assert (table["sim (s)"] > 0).all()


def test_the_peak_hour_of_a_diurnal_day_is_around_noon(day):
    start, end = day.peak
    assert end - start == pytest.approx(DAY_S / 24)
    assert start < DAY_S / 2 < end


def test_p95_and_pods_are_kept_per_window(day):
    assert day.p95_ms.shape == (24, 4) and day.pods.shape == (24, 4)
    assert day.pods["static, 2 pods"].to_numpy() == pytest.approx(2.0, rel=1e-3)  # to the last arrival
    hpa = day.pods["HPA, 1 to 4 pods"]
    assert hpa.iloc[12] > hpa.iloc[0]  # more pods at noon than at midnight
    assert day.rate.iloc[12] > day.rate.iloc[0]
    assert day.notes and "compressed" in day.notes[0]


def synthetic(latency_ms: list[float], pods: list[tuple[float, float]], status: list[int] | None = None) -> Result:
    """A run with requests due every second and the given pods' lives (start_s, end_s)."""
    n = len(latency_ms)
    frame = pd.DataFrame({
        "intended_s": np.arange(n, dtype=float), "sent_s": np.arange(n, dtype=float),
        "latency_s": np.array(latency_ms) / 1000, "service_s": np.array(latency_ms) / 1000,
        "status": status or [200] * n, "bytes": 0, "replica": "p0", "error": None, "infer_s": 0.001,
    })[COLUMNS]
    meta = {"duration_s": float(n), "pods": [
        {"name": f"p{i}", "start_s": a, "end_s": b, "cpu_request_cores": 0.5, "memory_request_gib": 0.25,
         "cpu_used_core_s": 0.1} for i, (a, b) in enumerate(pods)]}
    return Result(frame, meta)


def test_pods_over_time_counts_the_share_of_each_window_a_pod_lived():
    run = synthetic([1.0] * 10, pods=[(100.0, 110.0), (105.0, 110.0)])  # a live run: unix-like clock
    pods = architectures.pods_over_time(run, window_s=5.0)
    assert pods.index.tolist() == [0.0, 5.0] and pods.tolist() == [1.0, 2.0]


def test_p95_over_time_skips_failed_requests_and_leaves_empty_windows_empty():
    run = synthetic([1.0, 1.0, 900.0, 900.0, 5.0, 5.0], pods=[(0.0, 6.0)], status=[200, 200, 0, 0, 200, 200])
    p95 = architectures.p95_over_time(run, window_s=2.0, duration_s=8.0)
    assert p95.iloc[0] == pytest.approx(1.0) and np.isnan(p95.iloc[1]) and p95.iloc[2] == pytest.approx(5.0)
    assert len(p95) == 4 and np.isnan(p95.iloc[3])


def test_live_plan_runs_a_static_choice_as_it_is_and_anything_else_with_the_hpa():
    manifest = yaml.safe_load(HPA_MANIFEST.read_text())
    static, hpa_only, hybrid = architectures.candidates(HPA_MANIFEST, static=(2,), deferred_share=0.3)
    assert architectures.live_plan(static, manifest, 5.0) == architectures.LivePlan(sim.Static(2), 1.0)
    plan = architectures.live_plan(hybrid, manifest, 5.0)
    assert isinstance(plan.policy, sim.Autoscaled) and plan.policy.sync_period_s == 5.0
    assert plan.online_share == pytest.approx(0.7)
    assert architectures.live_plan(None, manifest, 2.0).online_share == 1.0


def test_compare_live_gives_the_error_of_each_prediction_in_percent():
    measured = synthetic([2.0] * 100, pods=[(0.0, 100.0)])
    predicted = synthetic([3.0] * 100, pods=[(0.0, 100.0), (50.0, 100.0)])
    table = architectures.compare_live(measured, predicted, cost.load_pricing(), slo_ms=50)
    assert table.loc["p95 (ms)", "error (%)"] == pytest.approx(50.0, abs=0.2)
    assert table.loc["mean pods", "measured"] == pytest.approx(1.0)
    assert table.loc["mean pods", "predicted"] == pytest.approx(1.5)
    assert table.loc["$ per hour", "error (%)"] == pytest.approx(50.0)
    assert np.isnan(table.loc["failed", "error (%)"])  # no error in % of nothing


def test_calibration_table_shows_both_capacities():
    traffic = schedules.Poisson(30, 20, seed=3)
    run = sim.simulate(traffic, SERVICE, policy=sim.Static(1))
    service = sim.calibrate(run)
    measured = SimpleNamespace(rate=87.5, slo_ms=50)  # what the parameters cell's calibration found
    table = architectures.calibration_table(run, measured, service, startup_s=2.5)
    assert table["pod start-up, created to Ready (s)"] == 2.5
    assert table["one pod's capacity within p95 <= 50 ms, measured (req/s)"] == 87.5
    assert table["one pod's capacity, as the simulator derives it (req/s)"] == pytest.approx(sim.capacity_rps(service), abs=0.1)


class FakeCluster:
    """Just enough of a Cluster for prepare_live: records calls, reports a settled state."""

    wait_until = base.Cluster.wait_until

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def scale(self, deployment, replicas):
        self.calls.append(("scale", deployment, replicas))
        self.replicas = replicas

    def wait_ready(self, deployment, replicas=None, timeout=60):
        self.calls.append(("wait_ready", deployment, replicas))

    def pods(self):
        return [object()] * getattr(self, "replicas", 1)

    def apply(self, manifest):
        self.calls.append(("apply", manifest["kind"]))

    def hpas(self):
        return [type("HPA", (), {"utilization_pct": 12.0})()]

    def deployments(self):
        return [type("Deployment", (), {"replicas": 1})()]


def test_prepare_live_scales_a_static_count_or_applies_the_hpa():
    manifest = yaml.safe_load(HPA_MANIFEST.read_text())
    cluster = FakeCluster()
    architectures.prepare_live(cluster, sim.Static(3), manifest, timeout_s=1)
    assert cluster.calls == [("scale", "model-serving-deployment", 3), ("wait_ready", "model-serving-deployment", 3)]
    cluster = FakeCluster()
    architectures.prepare_live(cluster, architectures.autoscaled(manifest, 5.0), manifest, timeout_s=1)
    assert cluster.calls == [("apply", "HorizontalPodAutoscaler")]


def test_a_batch_jobs_pods_are_drawn_when_the_job_runs():
    arrivals = np.linspace(0.0, 100.0, 50)
    job = sim.simulate(arrivals, SERVICE, policy=sim.Batch(replicas=1, period_s=200.0, run_at_s=150.0))
    pods = architectures.pods_over_time(job, window_s=50.0, duration_s=200.0, origin_s=0.0)
    assert pods.iloc[:3].sum() == 0 and pods.iloc[3] > 0  # nothing before 150 s


def test_a_day_too_big_for_free_memory_is_compressed_and_says_so(capsys):
    assert architectures.day_that_fits(86400, 100, available_bytes=64 * 2**30) == 86400
    assert capsys.readouterr().out == ""
    # 8.64M requests need ~2.4 GiB; with 1 GiB free, half of it holds ~1/5 of the day
    shorter = architectures.day_that_fits(86400, 100, available_bytes=2**30)
    assert 600 <= shorter < 86400 and shorter % 600 == 0
    assert shorter * 100 * architectures.BYTES_PER_REQUEST <= 2**30 / 2
    assert "compressed into" in capsys.readouterr().out


def test_a_day_shows_its_progress_by_architecture_and_gives_the_same_figures_without(capsys):
    quiet = simulate_small_day(static=(1,))
    assert capsys.readouterr().err == ""
    shown = simulate_small_day(static=(1,), progress=True)
    bar = capsys.readouterr().err
    assert "simulating static, 1 pod: 0/3 architectures" in bar and "3/3 architectures" in bar
    figures = [column for column in quiet.table.columns if column != "sim (s)"]  # the time taken differs
    pd.testing.assert_frame_equal(shown.table[figures], quiet.table[figures])
    pd.testing.assert_frame_equal(shown.p95_ms, quiet.p95_ms)
    pd.testing.assert_frame_equal(shown.pods, quiet.pods)


def test_a_day_says_how_long_it_was_as_the_lab_does():
    assert architectures._length(86400) == "24 h"
    assert architectures._length(5400) == "1.5 h"
    assert architectures._length(600) == "600 s"
