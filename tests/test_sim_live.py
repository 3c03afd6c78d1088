"""The simulator against a live run on the local backend (issue 6, Must show 4), short and loose.

One replica of the large model (tiny serves over 1000 req/s at 0.5 CPU, more than the load
generator can offer on a shared 2-core machine), calibrated just before a 2 x 6 s step trace at
25% and 50% of its measured capacity. Bounds are wide because the machine is shared; the
2-minute comparison against the 15% target, with its figures, is bench/sim_live.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from local_fixtures import SERVICE, deployment

from servelab import sim, validate
from servelab.backends.local import LocalCluster

NAME = "model-serving-deployment"
LAG_DISTURBED_MS = 20.0  # generator send lag p99 beyond which its latencies say more about the machine


@pytest.fixture(scope="module")
def check():
    args = list(deployment()["spec"]["template"]["spec"]["containers"][0]["args"])
    args[args.index("--model") + 1] = "large"
    with LocalCluster(service_port=0) as cluster:
        cluster.apply([SERVICE, deployment(args=args)])
        cluster.wait_ready(NAME, timeout=60)
        yield validate.against_live(
            cluster, fractions=(0.25, 0.5), step_s=6.0, calibration_s=4.0, saturation_s=3.0, progress=False
        )


def test_nothing_failed(check):
    for run in (check.low, check.saturated, check.live, check.saturated_after):
        assert run.summary()["errors"] == 0, run.summary()["errors_by_status"]
    assert check.overall.at["errors", "predicted"] == 0


def test_simulator_replays_the_live_arrivals(check):
    np.testing.assert_allclose(check.predicted.frame["intended_s"], check.live.frame["intended_s"], rtol=0, atol=1e-9)
    assert check.overall.at["ok", "measured"] == check.overall.at["ok", "predicted"] == len(check.live.frame)


def test_p95_within_a_factor_of_two(check):
    """Loose on purpose: wrong units, a capacity off by far or misaligned arrivals still fail it.

    Skipped when the check itself shows other programs changed the machine under it (the pod's
    capacity moved, or the generator fell far behind): then no calibration could hold.
    """
    drift = check.capacity_drift
    disturbed = [f"capacity moved {drift:+.0%}"] if abs(drift) > validate.DRIFT_WARN else []
    disturbed += [f"{name} run: send lag p99 {r.summary()['lag_p99']:.0f} ms" for name, r in
                  (("calibration", check.low), ("live", check.live)) if r.summary()["lag_p99"] > LAG_DISTURBED_MS]
    if disturbed:
        pytest.skip("machine too busy for a timing comparison: " + "; ".join(disturbed))
    ratios = [check.overall.at["p95_ms", "predicted"] / check.overall.at["p95_ms", "measured"]]
    ratios += list(check.steps["predicted_p95_ms"] / check.steps["measured_p95_ms"])
    assert all(0.5 <= r <= 2.0 for r in ratios), f"predicted/measured p95: {ratios}\n{check}"


def test_cost_from_the_same_pod_timeline(check):
    """One pod for the run's length on both sides: dollars and $/1M agree closely."""
    for figure in ("dollars", "per_million"):
        assert check.overall.at[figure, "error_pct"] == pytest.approx(0, abs=10), str(check)
    assert check.steps["per_million_error_pct"].abs().max() < 10, str(check)
    assert check.overall.at["dollars", "measured"] > 0


def test_steps_follow_the_measured_capacity(check):
    assert [round(r / check.capacity_rps, 6) for _, r in check.schedule.steps] == [0.25, 0.5]
    assert list(check.steps["load"].round(6)) == [0.25, 0.5]


def test_calibration_reads_the_pods_cpu_and_its_enforced_limit(check):
    """Busy time from the pod's CPU counters; the CPU limit becomes a quota only where it was enforced."""
    service, meta = sim.calibrate(check.low), check.low.meta
    assert "from the pods' counters" in service.source
    if meta["limits_enforced"]:
        assert service.pod.cpu_limit_cores == meta["cpu_limit_cores"] and service.pod.throttles
    else:
        assert service.pod.cpu_limit_cores is None and "not modelled" in service.pod.note
    # CPU per request: at least most of the model's own time, and not many times it (units, windows)
    assert 0.5 <= service.busy_s.mean() / check.low.frame["infer_s"].mean() <= 4
