"""Admission: past the in-flight limit a fast 503 on the same connection; past the connection
limit a 503 and the connection closed; health checks and metrics always get in."""

from __future__ import annotations

import http.client
import json
import re
import select
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from server_fixtures import call, metric

from servelab.server import ServerProcess
from servelab.server.admission import Admission

ROW = '{"instances": [1.0, 2.0, 5.0]}'
HOLD = {"batch_max_size": 1000, "batch_max_delay_ms": 2000}  # every prediction waits 2 s in flight


def _parse(raw: bytes) -> tuple[str, dict[str, str], bytes]:
    head, body = raw.split(b"\r\n\r\n", 1)
    status, *lines = head.decode().split("\r\n")
    return status, {k.lower(): v for k, v in (line.split(": ", 1) for line in lines)}, body


@pytest.mark.parametrize("close", [False, True])
def test_canned_refusals_are_complete_responses_saying_what_to_do(close):
    admission = Admission(max_concurrency=7, max_connections=9)
    for raw, flag in ((admission.busy([(b"date", b"d1")], close), "--max-concurrency"),
                      (admission.full([(b"date", b"d1")]), "--max-connections")):
        status, headers, body = _parse(raw)
        assert status == "HTTP/1.1 503 Service Unavailable"
        assert headers["retry-after"] == "1" and headers["date"] == "d1"
        assert int(headers["content-length"]) == len(body)
        assert flag in json.loads(body)["error"]
        assert (headers.get("connection") == "close") == (close or flag == "--max-connections")
    assert _parse(admission.full([(b"date", b"d2")]))[1]["date"] == "d2"  # rebuilt when the Date changes


def _wait_in_flight(server: ServerProcess, at_least: int) -> None:
    deadline = time.monotonic() + 30
    while metric(server.url, "servelab_requests_in_flight") < at_least:
        assert time.monotonic() < deadline, "requests never got in flight"


def test_past_max_concurrency_a_prediction_gets_a_fast_503_and_keeps_its_connection():
    with ServerProcess(max_concurrency=3, max_connections=10, **HOLD) as server:
        with ThreadPoolExecutor(3) as pool:
            held = [pool.submit(call, "POST", server.predict_url, ROW) for _ in range(3)]
            _wait_in_flight(server, 3)
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            start = time.monotonic()
            connection.request("POST", "/v1/models/my-model:predict", ROW)
            refused = connection.getresponse()
            body = json.loads(refused.read())
            took = time.monotonic() - start
            assert refused.status == 503 and took < 1.0, took
            assert "--max-concurrency" in body["error"] and refused.getheader("retry-after") == "1"
            assert not refused.will_close
            socket_before = connection.sock
            assert call("GET", f"{server.url}/v2/health/ready").status == 200
            assert [f.result().status for f in held] == [200] * 3
        connection.request("POST", "/v1/models/my-model:predict", ROW)  # same connection, now admitted
        assert connection.getresponse().status == 200 and connection.sock is socket_before
        connection.close()
        assert metric(server.url, "servelab_request_duration_seconds_count", 'endpoint="predict",status="503"') == 1


def test_past_max_connections_a_new_connection_gets_a_503_and_is_closed_but_probes_get_in():
    with ServerProcess(max_connections=3, **HOLD) as server:
        # One keep-alive connection for watching /metrics, opened first: it is one of the three.
        watch = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)

        def scrape(name: str) -> float:
            watch.request("GET", "/metrics")
            text = watch.getresponse().read().decode()
            return float(re.search(rf"^{name} ([0-9.e+-]+)$", text, re.M).group(1))

        assert scrape("servelab_connections_open") == 1
        with ThreadPoolExecutor(2) as pool:
            held = [pool.submit(call, "POST", server.predict_url, ROW) for _ in range(2)]
            deadline = time.monotonic() + 30
            while scrape("servelab_requests_in_flight") < 2:
                assert time.monotonic() < deadline, "requests never got in flight"
            refused = [call("POST", server.predict_url, ROW) for _ in range(5)]
            assert {r.status for r in refused} == {503}
            assert all("--max-connections" in r.json()["error"] and r.headers["connection"] == "close"
                       and r.headers["retry-after"] == "1" for r in refused)
            assert call("GET", f"{server.url}/v2/health/ready").json() == {"ready": True}
            assert scrape("servelab_connections_refused_total") == 5
            assert [f.result().status for f in held] == [200] * 2
        # Every connection closed is uncounted (only the watching one stays), and a slot is free again.
        while scrape("servelab_connections_open") != 1:
            assert time.monotonic() < deadline + 10, "the open-connection count did not come back down"
            time.sleep(0.05)
        assert call("POST", server.predict_url, ROW).status == 200
        watch.close()


def test_a_websocket_upgrade_is_answered_as_plain_http_and_leaves_the_connection_count_right():
    with ServerProcess() as server:
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
                sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                             b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
                assert not sock.recv(65536).startswith(b"HTTP/1.1 101")
        deadline = time.monotonic() + 10
        while metric(server.url, "servelab_connections_open") != 1:  # the scrape's own connection
            assert time.monotonic() < deadline, "upgraded connections stayed counted"
            time.sleep(0.05)


def _post(rows: int) -> bytes:
    body = json.dumps({"instances": [[1.0, 2.0, 5.0]] * rows}).encode()
    return b"POST /v1/models/my-model:predict HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


def _answers(pending: dict[socket.socket, bytes], until: int) -> list[tuple[socket.socket, bytes]]:
    """Whole responses on the sockets of `pending` (each with what it has read so far), in the order
    they complete, until `until` have come; the others stay in `pending`."""
    done = []
    while len(done) < until:
        ready, _, _ = select.select(list(pending), [], [], 30)
        assert ready, "no answer within 30 s"
        for sock in ready:
            pending[sock] += sock.recv(1 << 20)
            head, _, body = pending[sock].partition(b"\r\n\r\n")
            length = re.search(rb"(?i)content-length: (\d+)", head)
            if length and len(body) >= int(length.group(1)):
                done.append((sock, pending.pop(sock)))
    return done


def test_a_new_connection_past_the_limit_gets_its_503_while_the_loop_is_busy_serving():
    # The loop is kept inside one long turn: a big prediction blocks it while STREAM smaller ones
    # arrive, then it serves those one after another. A connection opened once the first of them
    # is answered is refused between two of the rest, not after them all (the next turn).
    stream = 40
    with ServerProcess(model="medium", max_connections=stream + 1) as server:
        socks = [socket.create_connection(("127.0.0.1", server.port), timeout=30) for _ in range(stream + 1)]
        try:
            for sock in socks:  # each accepted and counted
                sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
            assert all(answer.startswith(b"HTTP/1.1 200") for _, answer in _answers(dict.fromkeys(socks, b""), len(socks)))
            blocker, busy = socks[0], socks[1:]
            blocker.sendall(_post(20000))
            time.sleep(0.1)
            for sock in busy:
                sock.sendall(_post(100))
            pending = dict.fromkeys(busy + [blocker], b"")
            first = _answers(pending, 1)
            late = socket.create_connection(("127.0.0.1", server.port), timeout=30)
            late.sendall(_post(1))
            pending[late] = b""
            answers = first + _answers(pending, stream + 1)
            order = [sock for sock, _ in answers]
            refused = dict(answers)[late]
            assert refused.startswith(b"HTTP/1.1 503") and b"retry-after: 1" in refused.lower()
            assert order.index(late) < max(order.index(sock) for sock in busy), "refused only after the whole stream"
            late.close()
        finally:
            for sock in socks:
                sock.close()


def test_a_refused_connection_is_answered_when_its_first_bytes_come_late_and_closed_if_they_never_do():
    with ServerProcess(max_connections=1, header_timeout=0.5) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as held:
            held.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
            assert held.recv(65536).startswith(b"HTTP/1.1 200")
            with socket.create_connection(("127.0.0.1", server.port), timeout=30) as late:
                time.sleep(0.2)  # accepted and refused by now, waiting for its first bytes
                late.sendall(_post(1))
                status, headers, _ = _parse(late.recv(65536))
                assert status == "HTTP/1.1 503 Service Unavailable" and headers["retry-after"] == "1"
                assert late.recv(65536) == b""  # and closed
            with socket.create_connection(("127.0.0.1", server.port), timeout=30) as silent:
                start = time.monotonic()
                assert silent.recv(65536) == b""  # closed after the header timeout, with no answer
                assert time.monotonic() - start < 20
