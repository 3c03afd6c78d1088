"""servelab.sim against queueing theory, and the HPA, routing, batch and Result shape it promises."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from servelab import sim
from servelab.core import cost, schedules
from servelab.core.result import COLUMNS, Result
from servelab.sim import pod_pool, queues

MEAN_S = 0.01  # exponential service, 10 ms
HPA_MANIFEST = Path(__file__).resolve().parents[1] / "cluster" / "model-serving-hpa.yaml"


def erlang_c(c: int, offered: float) -> float:
    """Probability that an arrival waits in M/M/c (offered = lambda / mu, in Erlangs)."""
    top = offered**c / math.factorial(c) / (1 - offered / c)
    return top / (sum(offered**k / math.factorial(k) for k in range(c)) + top)


def mmc_response_quantile(c: int, rho: float, mu: float, q: float) -> float:
    """Quantile q of response time (wait + service) in M/M/c FIFO, from the closed form.

    P(T > t) = (1 - C) e^(-mu t) + C P(Exp(theta) + Exp(mu) > t), theta = c mu - lambda, where C is
    Erlang C: a waiting arrival's wait is exponential with rate theta, independent of its service.
    """
    lam = rho * c * mu
    waits, theta = erlang_c(c, lam / mu), c * mu - lam

    def tail(t: float) -> float:
        if math.isclose(theta, mu):
            both = (1 + mu * t) * math.exp(-mu * t)
        else:
            both = (theta * math.exp(-mu * t) - mu * math.exp(-theta * t)) / (theta - mu)
        return (1 - waits) * math.exp(-mu * t) + waits * both

    lo, hi = 0.0, 100.0 / mu
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if tail(mid) > 1 - q else (lo, mid)
    return (lo + hi) / 2


def test_closed_form_reduces_to_mm1():
    """M/M/1 response time is exponential with rate mu - lambda."""
    assert mmc_response_quantile(1, 0.8, 100.0, 0.95) == pytest.approx(math.log(20) / 20, rel=1e-9)


@pytest.mark.parametrize("c", [1, 2, 4])
@pytest.mark.parametrize("rho", [0.5, 0.8])
def test_mmc_p95_matches_erlang_c(c, rho):
    """One pod with c slots and a shared FIFO queue is M/M/c: p95 within 3% over ~1M requests."""
    rate = rho * c / MEAN_S
    arrivals = schedules.Poisson(rate, 1_000_000 / rate, seed=c).send_times()
    result = sim.simulate(arrivals, sim.ServiceTimes.exponential(MEAN_S), concurrency=c, seed=10 * c + int(rho * 10))
    assert len(result.frame) > 990_000
    simulated = np.percentile(result.frame["latency_s"].to_numpy(), 95)
    expected = mmc_response_quantile(c, rho, 1 / MEAN_S, 0.95)
    assert simulated == pytest.approx(expected, rel=0.03)


def test_vectorized_queues_equal_lindley_one_request_at_a_time():
    rng = np.random.default_rng(3)
    arrivals = np.sort(rng.uniform(10, 20, 5000))
    service = rng.exponential(0.004, 5000)
    pods = rng.integers(0, 4, 5000) * 3  # pod ids need not be contiguous
    free_at = np.array([0.0, 0, 0, 11.0, 0, 0, 12.5, 0, 0, 0.0])
    expected, free = [], dict(enumerate(free_at.tolist()))
    for a, s, p in zip(arrivals, service, pods):
        free[p] = max(a, free[p]) + s
        expected.append(free[p])
    got = queues.fifo_finish(arrivals, service, pods, free_at, t0=10.0)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
    assert free_at[9] == pytest.approx(free[9])


def test_busy_time_is_spread_over_sync_bins():
    targets = np.array([0, 2])
    start, finish = np.array([1.0, 14.0, 20.0]), np.array([3.0, 17.0, 52.0])  # inside, across, 3 bins
    grid, low = pod_pool.busy_grid(15.0, 5, targets, np.array([0, 0, 2]), start, finish)
    assert low == 0
    assert grid[0].tolist() == [3.0, 2.0, 0.0, 0.0]
    assert grid[1].tolist() == [0.0, 10.0, 15.0, 7.0]
    assert grid.sum() == pytest.approx((finish - start).sum())


def test_speculating_ahead_changes_nothing(monkeypatch):
    """Solving many syncs ahead and undoing after a scale event gives what one sync at a time gives."""
    day = schedules.Diurnal(100, 4, 1800, period=1800)
    service = sim.ServiceTimes.exponential(MEAN_S)
    policy = sim.Autoscaled.from_manifest(HPA_MANIFEST)
    ahead = sim.simulate(day, service, policy=policy, startup_s=5.0)
    monkeypatch.setattr(pod_pool, "SPECULATE_SYNCS", 1)
    step_by_step = sim.simulate(day, service, policy=policy, startup_s=5.0)
    assert len(sim.replica_timeline(ahead).desired.unique()) >= 3  # it did scale, so undoing was exercised
    pd.testing.assert_frame_equal(ahead.frame, step_by_step.frame)
    assert ahead.meta["timeline"] == step_by_step.meta["timeline"]
    used = [pytest.approx(p.pop("cpu_used_core_s"), rel=1e-12) for p in step_by_step.meta["pods"]]
    assert [p.pop("cpu_used_core_s") for p in ahead.meta["pods"]] == used  # summed in another order
    assert ahead.meta["pods"] == step_by_step.meta["pods"]


@pytest.fixture(scope="module")
def autoscaled():
    """A step up and back down, the lab HPA manifest (30 s scale-down window), 5 s pod start-up."""
    step = schedules.Step([(60, 20), (240, 150), (300, 20)])
    policy = sim.Autoscaled.from_manifest(HPA_MANIFEST)
    return sim.simulate(step, sim.ServiceTimes.exponential(MEAN_S), policy=policy, startup_s=5.0, seed=1)


def test_hpa_scales_up_under_a_step_and_down_after_the_window(autoscaled):
    timeline = sim.replica_timeline(autoscaled)
    high = timeline[(timeline.t_s > 60) & (timeline.t_s <= 300)]
    assert timeline[timeline.t_s <= 60].replicas.max() == 1
    assert high.replicas.max() >= 3
    after = timeline[timeline.t_s >= 300]
    first_down = after[after.replicas < after.replicas.iloc[0]].t_s.min()
    assert first_down >= 300 + 30 - 15  # the scale-down window, give or take one sync
    assert timeline.replicas.iloc[-1] == 1


def test_new_pods_serve_only_after_startup(autoscaled):
    frame = autoscaled.frame
    for pod in autoscaled.meta["pods"]:
        served = frame.loc[frame.replica == pod["name"], "intended_s"]
        if pod["start_s"] > 0:
            assert served.min() >= pod["start_s"] + 5.0


def test_result_has_the_live_shape_and_a_cost(autoscaled, tmp_path):
    assert list(autoscaled.frame.columns) == COLUMNS
    summary = autoscaled.summary()
    assert summary["errors"] == 0 and summary["p99"] >= summary["p50"] > 0
    assert summary["ok"] == len(autoscaled.frame)
    report = cost.cost_of_result(autoscaled)
    assert report.dollars > 0 and 0 < report.idle_share < 1
    assert len(report.breakdown) == len(autoscaled.meta["pods"]) >= 3
    loaded = Result.load(autoscaled.save(tmp_path / "run"))
    assert cost.cost_of_result(tmp_path / "run").dollars == pytest.approx(report.dollars)
    assert loaded.summary()["p95"] == pytest.approx(summary["p95"])


def test_least_outstanding_beats_random_routing():
    arrivals = schedules.Poisson(320, 200, seed=5).send_times()
    service = sim.ServiceTimes.exponential(MEAN_S)
    p95 = {
        routing: np.percentile(
            sim.simulate(arrivals, service, policy=sim.Static(4), routing=routing, seed=2).frame.latency_s, 95
        )
        for routing in ("random", "round-robin", "least-outstanding")
    }
    assert p95["least-outstanding"] < p95["round-robin"] < p95["random"]


def test_batch_job_serves_the_queue_at_its_scheduled_time():
    arrivals = schedules.Constant(2, 3600).send_times()
    batch = sim.simulate(arrivals, sim.ServiceTimes.exponential(MEAN_S), policy=sim.Batch(2, 1800.0, 600.0), startup_s=30)
    frame = batch.frame
    done = frame.intended_s + frame.latency_s
    runs = np.where(frame.intended_s <= 600, 600, np.where(frame.intended_s <= 2400, 2400, 4200))
    assert (done >= runs + 30).all() and (done < runs + 300).all()
    pods = batch.meta["pods"]
    assert len(pods) == 6 and all(p["end_s"] - p["start_s"] < 300 for p in pods)


def without_cpu_counters(result: Result) -> Result:
    """The run as a backend without CPU metrics would have recorded it."""
    pods = [{**p, "cpu_used_core_s": None} for p in result.meta["pods"]]
    return Result(result.frame.copy(), {**result.meta, "pods": pods})


def test_calibrate_takes_successful_service_times(autoscaled):
    service = sim.calibrate(without_cpu_counters(autoscaled))
    assert service.kind == "empirical" and len(service.samples_s) == len(autoscaled.frame)
    assert service.mean_s == pytest.approx(autoscaled.frame.service_s.mean())
    answer, busy = service.draw(1000, np.random.default_rng(0))
    assert set(answer) <= set(service.samples_s) and (busy == answer).all()  # no counters, no `saturated`: all busy


def test_calibrate_takes_busy_time_from_the_pods_cpu_counters(autoscaled):
    """CPU seconds per request from the pods' counters, at the run's CPU per busy second: the simulated busy time."""
    service = sim.calibrate(autoscaled)
    assert service.busy_s.mean() == pytest.approx(autoscaled.frame.infer_s.mean(), rel=1e-9)
    assert service.pod.cpu_busy_cores == autoscaled.meta["cpu_busy_cores"] and service.pod.cpu_limit_cores is None
    assert sim.capacity_rps(service) == pytest.approx(1 / service.busy_s.mean())


def test_calibrate_sizes_busy_time_from_a_saturated_run():
    """A pod answering in 3 ms of which 1 ms is its own: the saturated run shows ~1000 req/s capacity."""
    service = sim.ServiceTimes.empirical(np.full(1000, 0.003), busy_s=np.full(1000, 0.001))
    low = sim.simulate(schedules.Poisson(50, 20, seed=1), service)
    low.frame["infer_s"] = 0.0006  # the model's share, as server-timing reports it
    saturated = sim.simulate(schedules.Constant(2000, 5), service)
    calibrated = sim.calibrate(without_cpu_counters(low), saturated=saturated)
    assert calibrated.mean_s == pytest.approx(0.003, rel=0.02)  # a little queueing even at 5% busy
    assert calibrated.busy_s.mean() == pytest.approx(1 / saturated.summary()["achieved_rate"])
    assert calibrated.busy_s.mean() == pytest.approx(0.001, rel=0.05)


def test_only_busy_time_queues():
    """Answer time outside the pod (client, network) adds latency but does not make others wait."""
    arrivals = np.arange(0, 1, 0.002)  # 500 req/s
    service = sim.ServiceTimes.empirical(np.full(10, 0.005), busy_s=np.full(10, 0.001))
    result = sim.simulate(arrivals, service)
    np.testing.assert_allclose(result.frame.latency_s, 0.005)  # 50% busy, evenly spaced: nobody waits
    assert result.meta["pods"][0]["cpu_used_core_s"] == pytest.approx(500 * 0.001 * 0.5)


# -- CPU limits: CFS quota ------------------------------------------------------------------------

THROTTLED = sim.PodSize(cpu_busy_cores=1.0, cpu_limit_cores=0.5)  # 50 ms of CPU per 100 ms period


def test_a_burst_under_quota_stalls_until_each_next_period():
    """30 requests of 5 ms at once, 0.5 CPU: 10 fit in each period's 50 ms, the rest wait for the next."""
    service = sim.ServiceTimes.empirical(np.full(5, 0.005), pod=THROTTLED)
    result = sim.simulate(np.zeros(30), service)
    i = np.arange(30)
    np.testing.assert_allclose(result.frame.latency_s, i // 10 * 0.1 + (i % 10 + 1) * 0.005, atol=1e-12)
    assert result.meta["cpu_quota"] == {"limit_cores": 0.5, "period_s": 0.1, "quota_s": pytest.approx(0.05)}
    assert result.meta["pods"][0]["cpu_used_core_s"] == pytest.approx(30 * 0.005)
    unlimited = sim.simulate(np.zeros(30), service, pod=replace(THROTTLED, cpu_limit_cores=None))
    np.testing.assert_allclose(unlimited.frame.latency_s, (i + 1) * 0.005, atol=1e-12)


def quota_by_hand(arrivals, busy, pods, limit, period=0.1):
    """One request at a time: full speed while the period has quota, else wait for the next period."""
    free, k, used, out = {}, {}, {}, []
    for a, s, p in zip(arrivals.tolist(), busy.tolist(), pods.tolist()):
        t = max(a, free.get(p, 0.0))
        if math.floor(t / period) > k.get(p, -1):
            k[p], used[p] = math.floor(t / period), 0.0
        while s > 0:
            end = (k[p] + 1) * period
            run = min(s, limit * period - used[p], end - t)
            t, used[p], s = t + run, used[p] + run, s - run
            if s > 0:
                t, k[p], used[p] = end, k[p] + 1, 0.0
        free[p] = t
        out.append(t)
    return np.array(out)


@pytest.mark.parametrize("rate", [60, 150, 200])  # 30%, 75% and 100% of the quota
def test_throttled_queues_equal_one_request_at_a_time(rate):
    """The vectorized queues with stretches of one-at-a-time throttling, state carried between calls."""
    rng = np.random.default_rng(rate)
    arrivals = np.sort(rng.uniform(0, 3000 / rate, 3000))
    busy = rng.lognormal(np.log(0.005), 0.5, 3000)
    pods = rng.integers(0, 2, 3000) * 2
    expected = quota_by_hand(arrivals, busy, pods, 0.5)
    sim_pods = pod_pool.Pods(THROTTLED, 1, "round-robin", 0.0, rng)
    sim_pods.add_pods(3, 0.0, 0.0)
    got = [queues.fifo_finish(arrivals[lo:hi], busy[lo:hi], pods[lo:hi], sim_pods.free_at, arrivals[lo], sim_pods.quota)
           for lo, hi in ((0, 1000), (1000, 1001), (1001, 3000))]
    np.testing.assert_allclose(np.concatenate(got), expected, rtol=0, atol=1e-9)


def test_least_outstanding_throttles_the_same_queue():
    arrivals = schedules.Poisson(150, 20, seed=4).send_times()
    service = sim.ServiceTimes.empirical(np.random.default_rng(1).lognormal(np.log(0.003), 0.5, 500), pod=THROTTLED)
    one_by_one = sim.simulate(arrivals, service, routing="least-outstanding")
    vectorized = sim.simulate(arrivals, service)
    np.testing.assert_allclose(one_by_one.frame.latency_s, vectorized.frame.latency_s, rtol=0, atol=1e-9)
    assert vectorized.frame.latency_s.max() > 0.04  # it did stall


def test_speculating_ahead_changes_nothing_under_quota(monkeypatch):
    """Undoing speculative stretches restores each pod's quota too."""
    day = schedules.Diurnal(100, 4, 1800, period=1800)
    service = sim.ServiceTimes.empirical(np.random.default_rng(2).lognormal(np.log(0.006), 0.4, 1000), pod=THROTTLED)
    policy = sim.Autoscaled.from_manifest(HPA_MANIFEST)
    ahead = sim.simulate(day, service, policy=policy, startup_s=5.0, seed=3)
    monkeypatch.setattr(pod_pool, "SPECULATE_SYNCS", 1)
    step_by_step = sim.simulate(day, service, policy=policy, startup_s=5.0, seed=3)
    assert len(sim.replica_timeline(ahead).desired.unique()) >= 3
    pd.testing.assert_frame_equal(ahead.frame, step_by_step.frame)
    assert ahead.meta["timeline"] == step_by_step.meta["timeline"]


def test_quota_slows_service_only_near_the_limit():
    """Evenly spaced arrivals at 40% of the quota never stall; Poisson ones at 80% do, now and then."""
    service = sim.ServiceTimes.empirical(np.full(10, 0.004), pod=THROTTLED)
    assert sim.capacity_rps(service) == pytest.approx(125)  # 0.5 CPU / 4 ms
    even = sim.simulate(schedules.Constant(50, 60), service)
    np.testing.assert_allclose(even.frame.latency_s, 0.004)
    poisson = schedules.Poisson(100, 600, seed=1).send_times()
    stalled = np.percentile(sim.simulate(poisson, service).frame.latency_s, 99)
    fluid = np.percentile(sim.simulate(poisson, service, pod=replace(THROTTLED, cpu_limit_cores=None)).frame.latency_s, 99)
    assert stalled > 2 * fluid


def test_a_limit_is_modelled_only_where_it_was_enforced():
    meta = {"backend": "local", "cpu_request_cores": 0.5, "cpu_limit_cores": 0.5, "memory_request_gib": 0.25}
    enforced = sim.PodSize.from_meta({**meta, "limits_enforced": True})
    assert enforced.cpu_limit_cores == 0.5 and enforced.cpu_busy_cores == 1.0 and enforced.throttles
    loose = sim.PodSize.from_meta({**meta, "limits_enforced": False, "limits_note": "no cgroups here"})
    assert loose.cpu_limit_cores is None and not loose.throttles
    assert "not enforce" in loose.note and "no cgroups here" in loose.note
    result = sim.simulate(np.arange(10) / 10, sim.ServiceTimes.exponential(0.01), pod=loose)
    assert result.meta["cpu_quota"]["limit_cores"] is None and "no cgroups here" in result.meta["cpu_quota"]["note"]


def test_several_slots_under_quota_are_refused():
    with pytest.raises(ValueError, match="concurrency=1"):
        sim.simulate(np.zeros(3), sim.ServiceTimes.exponential(0.01), pod=THROTTLED, concurrency=2)


def test_calibrate_from_cpu_counters_of_a_limited_pod():
    """A live-shaped run: 1000 answers of ~4 ms, 2.0 s of pod CPU (2 ms each), 0.5 CPU enforced."""
    frame = pd.DataFrame({
        "intended_s": np.arange(1000) / 100.0, "sent_s": np.arange(1000) / 100.0,
        "latency_s": np.linspace(0.003, 0.005, 1000), "service_s": np.linspace(0.003, 0.005, 1000),
        "status": 200, "bytes": 20, "replica": "pod-a", "error": None, "infer_s": np.linspace(0.001, 0.002, 1000),
    })[COLUMNS]
    meta = {"mode": "open", "backend": "local", "replicas": 1, "cpu_request_cores": 0.5, "cpu_limit_cores": 0.5,
            "memory_request_gib": 0.25, "limits_enforced": True, "duration_s": 10.0,
            "pods": [{"name": "pod-a", "start_s": 0, "end_s": 10, "cpu_request_cores": 0.5,
                      "memory_request_gib": 0.25, "cpu_used_core_s": 2.0}]}
    service = sim.calibrate(Result(frame, meta))
    assert service.busy_s.mean() == pytest.approx(0.002)
    assert service.busy_s.max() - service.busy_s.min() == pytest.approx(0.001)  # model time varies, the rest is shared
    assert service.pod.throttles and sim.capacity_rps(service) == pytest.approx(250)  # 0.5 CPU / 2 ms
    assert "limit 0.5 CPU enforced" in service.source
