"""Running under uvicorn: graceful SIGTERM under load and bounded admission."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from server_fixtures import call, metric

from servelab.server import ServerProcess

ROW = '{"instances": [1.0, 2.0, 5.0]}'


def _wait_in_flight(server: ServerProcess, at_least: int, timeout: float = 30) -> None:
    """Until /metrics shows `at_least` predictions in flight."""
    deadline = time.monotonic() + timeout
    while metric(server.url, "servelab_requests_in_flight") < at_least:
        assert time.monotonic() < deadline, "requests never got in flight"


def test_sigterm_under_load_answers_every_admitted_request_and_exits_within_grace():
    grace = 8.0
    # Batching with a long delay holds every request in flight until the batch fires,
    # so SIGTERM is sure to land while they are being served.
    server = ServerProcess(batch_max_size=1000, batch_max_delay_ms=1500, grace_period=grace)
    server.start()
    signalled = threading.Event()
    records: list[tuple[bool, int | str]] = []  # (sent before SIGTERM, status or error)

    def client() -> None:
        while True:
            before = not signalled.is_set()
            try:
                records.append((before, call("POST", server.predict_url, ROW, timeout=grace + 5).status))
            except OSError as error:  # refused or closed: expected only after SIGTERM
                records.append((before, repr(error)))
                return

    try:
        with ThreadPoolExecutor(12) as pool:
            for _ in range(12):
                pool.submit(client)
            _wait_in_flight(server, 12)
            signalled.set()
            sent = time.monotonic()
            server.terminate()
            code = server.wait(grace + 5)
            took = time.monotonic() - sent
    finally:
        server.kill()
    admitted = [outcome for before, outcome in records if before]
    assert len(admitted) >= 12
    assert all(outcome == 200 for outcome in admitted), admitted
    assert took < grace, f"exited {took:.1f} s after SIGTERM, grace {grace} s"
    assert code in (0, -15), server.output()


def test_exit_within_grace_even_when_requests_cannot_finish():
    grace = 2.0
    server = ServerProcess(batch_max_size=1000, batch_max_delay_ms=60_000, grace_period=grace)
    server.start()
    try:
        with ThreadPoolExecutor(2) as pool:
            stuck = [pool.submit(call, "POST", server.predict_url, ROW, None, 30) for _ in range(2)]
            _wait_in_flight(server, 2)
            sent = time.monotonic()
            server.terminate()
            server.wait(grace + 5)
            took = time.monotonic() - sent
            for future in stuck:
                try:
                    assert future.result().status != 200  # cut off: it never got an answer
                except OSError:
                    pass
    finally:
        server.kill()
    assert took < grace + 0.5, f"exited {took:.1f} s after SIGTERM, grace {grace} s"


def test_past_max_concurrency_predictions_get_a_fast_503_and_health_still_answers():
    with ServerProcess(max_concurrency=3, batch_max_size=1000, batch_max_delay_ms=2000) as server:
        with ThreadPoolExecutor(3) as pool:
            held = [pool.submit(call, "POST", server.predict_url, ROW) for _ in range(3)]
            _wait_in_flight(server, 3)
            start = time.monotonic()
            rejected = call("POST", server.predict_url, ROW)
            took = time.monotonic() - start
            assert rejected.status == 503 and took < 1.0, (rejected, took)
            assert "max-concurrency" in rejected.json()["error"]
            assert rejected.headers["retry-after"] == "1"
            assert call("GET", f"{server.url}/v2/health/ready").status == 200
            assert [f.result().status for f in held] == [200, 200, 200]
        assert metric(server.url, "servelab_request_duration_seconds_count", 'endpoint="predict",status="503"') == 1
        assert call("POST", server.predict_url, ROW).status == 200  # admitted again once the load is gone
