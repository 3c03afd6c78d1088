"""Result: percentiles from HdrHistogram, failures beside them (never folded in), self-checks, save/load."""

import numpy as np
import pytest
from load_fixtures import synthetic_result

from servelab.core.result import LAG_WARN_MS, Result, format_summary, latency_histogram


def test_percentiles_match_numpy_within_hdr_precision():
    latencies = np.random.default_rng(1).lognormal(mean=1.0, sigma=0.8, size=5000)  # ms
    s = synthetic_result(latencies).summary()
    for key, p in [("p50", 50), ("p90", 90), ("p95", 95), ("p99", 99), ("p999", 99.9)]:
        assert s[key] == pytest.approx(np.percentile(latencies, p), rel=0.01, abs=0.002), key
    assert s["max"] == pytest.approx(latencies.max(), rel=0.001)
    assert s["p50"] <= s["p90"] <= s["p95"] <= s["p99"] <= s["p999"] <= s["max"]


def test_failures_are_counted_by_status_and_kept_out_of_the_percentiles():
    latencies = [1.0] * 90 + [500.0] * 10  # the slow ones failed
    status = [200] * 90 + [500] * 6 + [0] * 4
    s = synthetic_result(latencies, status=status).summary()
    assert (s["ok"], s["errors"], s["requests"]) == (90, 10, 100)
    assert s["errors_by_status"] == {0: 4, 500: 6}
    assert s["error_examples"] == {0: "timeout", 500: "boom"}
    assert s["max"] == pytest.approx(1.0, rel=0.001)
    assert s["achieved_rate"] == pytest.approx(90 / 1.0)
    assert s["offered_rate"] == pytest.approx(100 / 1.0)
    assert any("10 of 100 requests failed" in w for w in s["warnings"])
    assert not s["generator_limited"]  # failures are the server's, not the client's


def test_schedule_lag_is_reported_and_marks_the_result_when_large():
    calm = synthetic_result([2.0] * 100, lag_ms=0.3).summary()
    assert calm["lag_p99"] == pytest.approx(0.3) and not calm["generator_limited"] and calm["warnings"] == []
    behind = synthetic_result([20.0] * 100, lag_ms=np.linspace(0, 3 * LAG_WARN_MS, 100)).summary()
    assert behind["generator_limited"]
    assert "fell behind its schedule" in behind["warnings"][0]


def test_a_busy_client_cpu_marks_the_result():
    s = synthetic_result([2.0] * 100, meta={"client_cpu": 0.97}).summary()
    assert s["generator_limited"] and "97% of a CPU core" in s["warnings"][0]


def test_requests_not_sent_for_max_inflight_mark_the_result():
    result = synthetic_result([2.0] * 10, status=[200] * 8 + [0] * 2, meta={"max_inflight": 4})
    result.frame.loc[8:, "error"] = "not sent: 4 requests already in flight (max_inflight)"
    s = result.summary()
    assert s["generator_limited"]
    assert any("2 requests were not sent because max_inflight=4" in w for w in s["warnings"])


def test_closed_loop_has_no_offered_rate_and_no_lag():
    s = synthetic_result([2.0] * 50, lag_ms=3.0, meta={"mode": "closed"}).summary()
    assert np.isnan(s["offered_rate"]) and s["lag_p99"] == 0.0


def test_save_and_load_round_trip(tmp_path):
    result = synthetic_result([1.0, 2.0, 3.0, 250.0], status=[200, 200, 503, 0], meta={"url": "http://x"})
    result.save(tmp_path / "run")
    assert {p.name for p in (tmp_path / "run").iterdir()} == {"requests.csv", "meta.json"}
    again = Result.load(tmp_path / "run")
    assert again.meta == result.meta
    assert list(again.frame.columns) == list(result.frame.columns)
    assert again.frame["error"].tolist()[2:] == ["boom", "timeout"]
    assert again.frame["replica"].isna().tolist() == [False, False, True, True]
    np.testing.assert_allclose(again.frame["latency_s"], result.frame["latency_s"], atol=1e-6)
    for key in ("p50", "p99", "ok", "errors", "errors_by_status", "lag_p99"):
        assert again.summary()[key] == result.summary()[key], key


def test_format_summary_is_a_readable_table():
    text = format_summary(synthetic_result([1.0] * 9 + [9.0], status=[200] * 9 + [500]).summary(), "title line")
    lines = text.splitlines()
    assert lines[0] == "title line"
    for header in ("p50", "p99.9", "achieved/s", "lag p99 ms", "failed with status 500: 1 (e.g. boom)"):
        assert header in text


def test_histogram_clamps_to_its_range():
    hist = latency_histogram(np.array([0.0, 1e-7, 5000.0]))
    assert hist.total_count == 3 and hist.get_min_value() == 1


def test_bucketed_recording_equals_recording_one_by_one():
    from hdrh.histogram import HdrHistogram

    latency_s = np.random.default_rng(2).lognormal(-5, 1.5, 20_000)
    one_by_one = HdrHistogram(1, 3_600_000_000, 3)
    for us in np.rint(latency_s * 1e6).astype(np.int64):
        one_by_one.record_value(int(max(us, 1)))
    fast = latency_histogram(latency_s)
    for p in (50, 90, 99, 99.9, 100):
        assert fast.get_value_at_percentile(p) == one_by_one.get_value_at_percentile(p)
    assert (fast.total_count, fast.get_mean_value()) == (one_by_one.total_count, one_by_one.get_mean_value())
