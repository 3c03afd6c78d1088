"""SIGTERM as Kubernetes sends it: readiness fails at once, serving goes on for the drain delay,
every request sent gets its answer, and the process exits 0 within the grace period."""

from __future__ import annotations

import http.client
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from server_fixtures import call, metric

from servelab.server import ServerProcess

ROW = '{"instances": [1.0, 2.0, 5.0]}'
PROBE_PERIOD_S = 1.0  # the manifest's readinessProbe periodSeconds


def _wait_in_flight(server: ServerProcess, at_least: int, timeout: float = 30) -> None:
    """Until /metrics shows `at_least` predictions in flight."""
    deadline = time.monotonic() + timeout
    while metric(server.url, "servelab_requests_in_flight") < at_least:
        assert time.monotonic() < deadline, "requests never got in flight"


class KeepAliveClient:
    """Sends predictions back to back on one keep-alive connection, reconnecting when told to close.

    Stops when a reconnect is refused (the server has stopped accepting, as a load balancer
    would see it). Anything else that goes wrong with a request already sent is a reset.
    """

    def __init__(self, server: ServerProcess):
        self.server = server
        self.answers: list[tuple[float, int, str]] = []  # (sent at, status, connection header)
        self.resets: list[str] = []
        self.refused_at: float | None = None

    def run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=20)
        while True:
            sent = time.monotonic()
            try:
                connection.request("POST", "/v1/models/my-model:predict", ROW)
            except ConnectionRefusedError:
                self.refused_at = sent
                return
            except OSError as error:
                self.resets.append(f"sending: {error!r}")
                return
            try:
                response = connection.getresponse()
                response.read()
            except (OSError, http.client.HTTPException) as error:
                self.resets.append(f"waiting for the answer: {error!r}")
                return
            self.answers.append((sent, response.status, response.getheader("connection", "")))
            if response.will_close:
                connection.close()  # the next request opens a new connection


def _poll_readiness(server: ServerProcess, stop: threading.Event, seen: list[tuple[float, object]]) -> None:
    """Every 0.1 s, /v2/health/ready on a new connection, as a kubelet probes: (time, status or error)."""
    while not stop.is_set():
        at = time.monotonic()
        try:
            seen.append((at, call("GET", f"{server.url}/v2/health/ready", timeout=2).status))
        except OSError as error:
            seen.append((at, type(error).__name__))
        time.sleep(0.1)


def test_sigterm_under_keep_alive_load_fails_readiness_at_once_resets_nothing_and_exits_0():
    delay, grace = 2.0, 8.0
    server = ServerProcess(drain_delay=delay, grace_period=grace).start()
    clients = [KeepAliveClient(server) for _ in range(8)]
    probes: list[tuple[float, object]] = []
    stop_probing = threading.Event()
    try:
        with ThreadPoolExecutor(len(clients) + 1) as pool:
            pool.submit(_poll_readiness, server, stop_probing, probes)
            running = [pool.submit(c.run) for c in clients]
            time.sleep(1.0)
            sigterm = time.monotonic()
            server.terminate()
            code = server.wait(grace + 5)
            exited = time.monotonic() - sigterm
            stop_probing.set()
            for future in running:
                future.result(timeout=30)
    finally:
        stop_probing.set()
        server.kill()
    assert code == 0, server.output()
    assert exited < grace, f"exited {exited:.1f} s after SIGTERM, grace {grace} s"
    assert [reset for c in clients for reset in c.resets] == []
    answers = [a for c in clients for a in c.answers]
    assert {status for _, status, _ in answers} == {200}
    # It kept serving through the delay, and only then told each connection to close.
    assert any(sigterm + 0.5 < sent < sigterm + delay - 0.5 for sent, _, _ in answers)
    assert all(c.refused_at is not None and c.refused_at > sigterm + delay - 0.2 for c in clients)
    assert sum(header == "close" for _, _, header in answers) >= len(clients)
    # Readiness: 200 before SIGTERM, 503 within one probe period after it, never 200 again; and
    # the 503s came on new connections, so the server was still accepting during the delay.
    before = [status for at, status in probes if at < sigterm]
    after = [(at - sigterm, status) for at, status in probes if at >= sigterm]
    assert before and set(before) == {200}
    first_failure = next(t for t, status in after if status != 200)
    assert first_failure < PROBE_PERIOD_S
    assert all(status != 200 for t, status in after if t >= first_failure)
    assert any(status == 503 for t, status in after if t > 0.5)


def test_exit_within_grace_even_when_requests_cannot_finish():
    grace = 2.0
    server = ServerProcess(batch_max_size=1000, batch_max_delay_ms=60_000, grace_period=grace).start()
    try:
        with ThreadPoolExecutor(2) as pool:
            stuck = [pool.submit(call, "POST", server.predict_url, ROW, None, 30) for _ in range(2)]
            _wait_in_flight(server, 2)
            sent = time.monotonic()
            server.terminate()
            code = server.wait(grace + 5)
            took = time.monotonic() - sent
            for future in stuck:
                try:
                    assert future.result().status != 200  # cut off: it never got an answer
                except OSError:
                    pass
    finally:
        server.kill()
    assert code == 0, server.output()
    assert took < grace + 0.5, f"exited {took:.1f} s after SIGTERM, grace {grace} s"


def test_requests_in_flight_at_sigterm_are_answered():
    server = ServerProcess(batch_max_size=1000, batch_max_delay_ms=1500, grace_period=8.0).start()
    try:
        with ThreadPoolExecutor(6) as pool:
            held = [pool.submit(call, "POST", server.predict_url, ROW) for _ in range(6)]
            _wait_in_flight(server, 6)
            server.terminate()
            assert [f.result().status for f in held] == [200] * 6
            assert server.wait(10) == 0
    finally:
        server.kill()
