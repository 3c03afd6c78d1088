"""Open and closed loop against a real `servelab serve`: the issue's must-shows 1 and 2.

The machine is shared, so bounds are generous; bench/load.py and the report hold exact figures.
"""

import os
import sys

import numpy as np
import pytest
from load_fixtures import machine_timing

from servelab import load
from servelab.load.runner import OIP_BODY, auto_workers, request_body, target_url
from servelab.server import ServerProcess


def test_target_url_adds_the_protocol_path_to_a_base_url():
    assert target_url("http://h:1") == "http://h:1/v1/models/my-model:predict"
    assert target_url("http://h:1/", "oip", "m") == "http://h:1/v2/models/m/infer"
    assert target_url("http://h:1/v1/models/x:predict", "oip") == "http://h:1/v1/models/x:predict"
    with pytest.raises(ValueError, match="tfserving"):
        target_url("http://h", "grpc")


def test_request_bodies():
    assert request_body("tfserving") == b'{"instances":[[1.0,2.0,5.0]]}'
    assert request_body("oip") == request_body("oip", OIP_BODY)
    assert request_body("tfserving", '{"instances": [1, 2, 5]}') == b'{"instances": [1, 2, 5]}'


def test_auto_workers_follow_the_busiest_second(monkeypatch):
    monkeypatch.setattr("servelab.load.runner.RATE_PER_WORKER", 100)
    monkeypatch.setattr("os.cpu_count", lambda: 4)
    assert auto_workers(load.Constant(90, 5).send_times()) == 1
    assert auto_workers(load.Step([(5, 50), (1, 250)]).send_times()) == 3
    assert auto_workers(load.Constant(10_000, 1).send_times()) == 4


def test_open_loop_500_per_s_for_10_s_keeps_up(servelab_server):
    """Must-show 1: achieved within 2% of offered, 0 errors, lag p99 < 2 ms (asserted: 5%, 20 ms).

    Other programs share these 2 cores, so a second process keeps the same schedule without
    sending anything during the run: when even it is late by more than 10 ms at p99 (or the load
    average is above 2 per core, when the server itself gets too little CPU), the machine is
    too busy to judge the generator and the test says so instead of passing or failing.
    """
    with machine_timing(500, 10) as machine:
        result = load.run(servelab_server.predict_url, load.Constant(500, 10), progress=False,
                          meta={"model": "tiny"})
    s = result.summary()
    print(f"\nmust-show 1: achieved {s['achieved_rate']:.1f}/s of {s['offered_rate']:.0f}/s, errors {s['errors']}, "
          f"lag p50 {s['lag_p50']:.2f} p99 {s['lag_p99']:.2f} max {s['lag_max']:.2f} ms, "
          f"p50 {s['p50']:.2f} p99 {s['p99']:.2f} ms, client cpu {s['client_cpu']:.0%}; "
          f"bare event loop p99 {machine['p99_ms']:.2f} ms")
    assert s["requests"] == 5000 and s["ok"] + s["errors"] == 5000
    busy = os.getloadavg()[0] / (os.cpu_count() or 1)
    if machine["p99_ms"] > 10.0 or busy > 2.0:
        pytest.skip(f"machine too busy to judge the generator: an idle event loop was {machine['p99_ms']:.0f} ms "
                    f"late at p99 during the run, load average {busy:.1f} per core "
                    f"(generator lag p99 {s['lag_p99']:.0f} ms, errors {s['errors']})")
    assert s["errors"] == 0
    assert s["achieved_rate"] == pytest.approx(500, rel=0.05)
    assert s["lag_p99"] < 20.0
    assert result.meta["model"] == "tiny" and result.meta["schedule"]["kind"] == "constant"
    assert result.frame["replica"].notna().all() and result.frame["infer_s"].notna().all()


def test_oip_protocol_against_the_server(servelab_server):
    result = load.run(servelab_server.url, load.Constant(50, 0.4), protocol="oip", progress=False)
    assert result.meta["url"].endswith("/v2/models/my-model/infer")
    assert result.summary()["errors"] == 0 and (result.frame["bytes"] > 0).all()


def test_coordinated_omission_open_loop_sees_the_stalls_closed_loop_hides_them():
    """Must-show 2: 200 ms stall every 2 s; open-loop p99 >= 5x closed-loop p99 (from actual sends)."""
    with ServerProcess(model="tiny", name="my-model", stall_every=2.0, stall_for=0.2) as server:
        open_ = load.run(server.predict_url, load.Constant(200, 4), progress=False).summary()
        closed = load.run_closed(server.predict_url, users=2, duration=4, progress=False).summary()
    print(f"\nmust-show 2: open p99 {open_['p99']:.1f} ms (p50 {open_['p50']:.1f}), "
          f"closed p99 {closed['p99']:.1f} ms (p50 {closed['p50']:.1f}), ratio {open_['p99'] / closed['p99']:.1f}x")
    assert open_["errors"] == 0 and closed["errors"] == 0
    assert open_["p99"] >= 100.0  # the stalls are in the open-loop tail ...
    assert open_["p99"] >= 5 * closed["p99"]  # ... and mostly missing from the closed-loop one


def test_worker_processes_share_one_schedule(fixture_url):
    """Two generator processes take interleaved shares and the merged result is one schedule."""
    schedule = load.Constant(200, 1)
    result = load.run(f"{fixture_url}/ok/v1/models/m:predict", schedule, workers=2, progress=False)
    frame = result.frame
    assert result.meta["workers"] == 2 and len(frame) == 200
    if sys.platform.startswith("linux"):
        assert result.meta["pacing"] == "timerfd"  # in the worker processes too
    np.testing.assert_allclose(frame["intended_s"], schedule.send_times(), atol=1e-6)
    assert (frame["status"] == 200).all()
    assert (frame["sent_s"] >= frame["intended_s"]).all()
    assert result.summary()["lag_p50"] < 50  # both started at the shared start time
