"""The request engine against a server that misbehaves on purpose: every outcome is recorded.

Must-show 3 of the load issue: timeouts and 5xx are failures with their status, nothing dropped.
"""

import pytest

from servelab import load
from servelab.load.generator import _infer_ms


def ep(base: str, name: str) -> str:
    return f"{base}/{name}/v1/models/m:predict"


def test_5xx_are_failures_with_their_status_and_body(fixture_url):
    result = load.run(ep(fixture_url, "flaky"), load.Constant(60, 1), progress=False)
    frame, s = result.frame, result.summary()
    assert len(frame) == 60  # every scheduled request is a row
    assert s["errors_by_status"] == {500: 20} and s["ok"] == 40
    failed = frame[frame["status"] == 500]
    assert failed["error"].str.contains("injected failure").all()
    assert failed["replica"].isna().all()  # the 500s carry no replica header


def test_timeouts_are_failures_with_status_0_and_say_so(fixture_url):
    result = load.run(ep(fixture_url, "slow"), load.Constant(20, 0.5), timeout=0.3, progress=False)
    frame = result.frame
    assert len(frame) == 10 and (frame["status"] == 0).all()
    assert frame["error"].str.startswith("timeout: no complete response within 0.3 s").all()
    assert (frame["service_s"] >= 0.29).all() and (frame["service_s"] < 1.5).all()
    assert result.summary()["errors_by_status"] == {0: 10}


def test_dropped_connections_are_failures_with_the_error_text(fixture_url):
    result = load.run(ep(fixture_url, "drop"), load.Constant(20, 0.5), progress=False)
    frame = result.frame
    assert len(frame) == 10 and (frame["status"] == 0).all()
    assert frame["error"].str.contains("Disconnected|Connection|reset", case=False).all()


def test_refused_connection_is_recorded_not_raised():
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = load.run(f"http://127.0.0.1:{port}", load.Constant(10, 0.3), progress=False)
    assert len(result.frame) == 3 and (result.frame["status"] == 0).all()
    assert result.frame["error"].str.contains("Connect", case=False).all()


def test_ok_responses_record_replica_bytes_and_model_time(fixture_url):
    frame = load.run(ep(fixture_url, "ok"), load.Constant(50, 0.4), progress=False).frame
    assert (frame["status"] == 200).all()
    assert (frame["replica"] == "fixture-0").all()
    assert (frame["bytes"] == 23).all()
    assert frame["infer_s"].tolist() == pytest.approx([0.00025] * len(frame))
    assert (frame["sent_s"] >= frame["intended_s"]).all()  # never sent early
    assert (frame["latency_s"] >= frame["service_s"]).all()  # latency counts from the intended time


def test_max_inflight_refusals_are_recorded_failures(fixture_url):
    result = load.run(ep(fixture_url, "slow"), load.Constant(40, 0.5), timeout=0.3, max_inflight=4, progress=False)
    s = result.summary()
    refused = result.frame["error"].str.startswith("not sent:", na=False)
    assert len(result.frame) == 20
    assert refused.sum() >= 8 and s["generator_limited"]
    assert any("were not sent because max_inflight=4" in w for w in s["warnings"])


def test_closed_loop_users_wait_for_each_answer(fixture_url):
    result = load.run_closed(ep(fixture_url, "ok"), users=2, duration=0.5, think_time=0.05, progress=False)
    frame = result.frame
    assert result.meta["mode"] == "closed" and result.meta["users"] == 2 and result.meta["pacing"] is None
    # Two users, each at most one request per 50 ms of thinking plus the answer time.
    assert 4 <= len(frame) <= 2 * (0.5 / 0.05 + 1)
    assert (frame["status"] == 200).all()
    assert (frame["sent_s"] - frame["intended_s"]).abs().max() < 0.01  # intended = actual send


@pytest.mark.parametrize(
    "header, ms",
    [("infer;dur=0.250", 0.25), ("db;dur=3, infer;desc=\"model\";dur=1.5", 1.5), ("cache;dur=2", None), (None, None)],
)
def test_server_timing_infer_duration(header, ms):
    assert _infer_ms(header) == ms


def test_cluster_metadata_and_caller_meta_are_merged(fixture_url):
    class FakeCluster:
        windows: list[tuple[float, float]] = []

        def run_metadata(self, start_unix_s, end_unix_s):
            self.windows.append((start_unix_s, end_unix_s))
            return {"backend": "local", "replicas": 2, "limits_enforced": False, "pods": []}

    result = load.run(ep(fixture_url, "ok"), load.Constant(10, 0.2), cluster=FakeCluster(),
                      meta={"model": "tiny"}, progress=False)
    meta = result.meta
    assert (meta["backend"], meta["replicas"], meta["limits_enforced"], meta["model"]) == ("local", 2, False, "tiny")
    [(start, end)] = FakeCluster.windows  # the cluster is asked about this run's own window
    assert 0 < end - start < 30
    assert meta["schedule"] == {"kind": "constant", "rate": 10.0, "duration": 0.2}
    assert meta["url"] == ep(fixture_url, "ok") and meta["cpu_count"] >= 1
    assert {"python", "servelab", "httptools", "onnxruntime"} <= set(meta["versions"])
    assert meta["started_utc"].endswith("+00:00")
    plain = load.run(ep(fixture_url, "ok"), load.Constant(10, 0.2), progress=False).meta
    assert plain["backend"] is None and plain["replicas"] is None
