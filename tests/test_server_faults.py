"""Stall injection: predictions pause on schedule, health keeps answering."""

from __future__ import annotations

import time

import pytest
from server_fixtures import call

from servelab.server import ServerProcess
from servelab.server.faults import Stall


def test_stall_schedule():
    stall = Stall(every_s=10, for_s=2, start=100.0)
    assert stall.remaining(105.0) == 0  # first period runs clean
    assert stall.remaining(110.0) == 2
    assert stall.remaining(111.5) == pytest.approx(0.5)
    assert stall.remaining(112.5) == 0
    assert stall.remaining(120.25) == pytest.approx(1.75)


def test_stall_needs_for_shorter_than_every():
    with pytest.raises(ValueError, match="stall-for"):
        Stall(every_s=1, for_s=1)


def test_stalled_server_holds_predictions_but_not_health():
    with ServerProcess(stall_every=1.0, stall_for=0.6) as server:
        latencies, health = [], []
        end = time.monotonic() + 2.5
        while time.monotonic() < end:
            start = time.monotonic()
            assert call("POST", server.predict_url, '{"instances": [1.0, 2.0, 5.0]}').status == 200
            latencies.append(time.monotonic() - start)
            start = time.monotonic()
            call("GET", f"{server.url}/v2/health/live")
            health.append(time.monotonic() - start)
    latencies.sort()
    assert latencies[-1] > 0.3, "no request waited for a stall"
    assert latencies[len(latencies) // 2] < 0.3, "most requests should not stall"
    assert max(health) < 0.3
