"""A Service's added round trip: read from its annotations, drawn within its bounds, added to every
request through it (and only through it), and recorded in the run's metadata."""

from __future__ import annotations

import asyncio
import copy
import statistics
import time

import pytest
from local_fixtures import SERVICE, deployment, manifest
from proxy_fixtures import RESPONSES, pod, started

from servelab import load
from servelab.backends.local import LocalCluster
from servelab.backends.local.proxy.delay import Delay
from servelab.backends.local.proxy.round_trip import (
    ANNOTATION,
    JITTER_ANNOTATION,
    RoundTrip,
)


def service(name: str = "model-serving", **annotations) -> dict:
    """The repo's Service, renamed and annotated."""
    doc = copy.deepcopy(manifest(SERVICE))
    doc["metadata"]["name"] = name
    doc["metadata"]["annotations"] = annotations
    return doc


@pytest.mark.parametrize("annotations, expected", [
    ({}, RoundTrip(0, 0)),
    ({ANNOTATION: "150ms"}, RoundTrip(150, 0)),
    ({ANNOTATION: "0.15s", JITTER_ANNOTATION: "15ms"}, RoundTrip(150, 15)),
    ({ANNOTATION: " 20 ms ", JITTER_ANNOTATION: "20ms"}, RoundTrip(20, 20)),
])
def test_annotations_are_read(annotations, expected):
    assert RoundTrip.of_service(service(**annotations)) == expected


def test_without_the_annotation_the_proxy_is_started_as_before():
    assert RoundTrip().argv() == []
    assert RoundTrip(150.0, 15.0).argv() == ["--round-trip-ms", "150.0", "--round-trip-jitter-ms", "15.0"]


@pytest.mark.parametrize("annotations, named", [
    ({ANNOTATION: "150"}, ANNOTATION),  # no unit
    ({ANNOTATION: 150}, ANNOTATION),  # unquoted in YAML: a number, not a duration
    ({ANNOTATION: "-5ms"}, ANNOTATION),
    ({ANNOTATION: "far"}, ANNOTATION),
    ({ANNOTATION: "150s"}, ANNOTATION),  # over 10 s: a typo, not a network
    ({ANNOTATION: "150ms", JITTER_ANNOTATION: "15"}, JITTER_ANNOTATION),
    ({ANNOTATION: "20ms", JITTER_ANNOTATION: "30ms"}, JITTER_ANNOTATION),  # the round trip would go below 0
    ({JITTER_ANNOTATION: "5ms"}, JITTER_ANNOTATION),  # jitter around no round trip
])
def test_a_bad_annotation_names_itself_and_the_accepted_form(annotations, named):
    with pytest.raises(ValueError) as error:
        RoundTrip.of_service(service(**annotations))
    message = str(error.value)
    assert f"service model-serving: annotation {named}=" in message
    assert '"150ms"' in message  # an example of the accepted form


def test_apply_refuses_a_bad_annotation():
    with LocalCluster(service_port=0) as cluster:
        with pytest.raises(ValueError, match=f"annotation {ANNOTATION}='fast' is not a duration"):
            cluster.apply(service(**{ANNOTATION: "fast"}))
        assert cluster.services() == []


def test_draws_stay_within_half_the_round_trip_give_or_take_half_the_jitter(run):
    async def draws(seed: str) -> list[float]:
        delay = Delay(RoundTrip(150, 15), seed)
        return [delay.draw() for _ in range(10_000)]

    first, again, other = run(draws("svc")), run(draws("svc")), run(draws("other"))
    assert all(0.0675 <= d <= 0.0825 for d in first)  # each way: 75 ms +- 7.5 ms
    assert max(first) - min(first) > 0.0145  # uniform: the whole range is used
    assert abs(statistics.mean(first) - 0.075) < 0.0005
    assert first == again and first != other  # seeded by the Service's name


async def _latencies_ms(port: int, n: int) -> list[float]:
    """n requests, one after another on one kept-alive connection, each timed from send to last byte."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    out = []
    for _ in range(n):
        started_s = time.perf_counter()
        writer.write(b"GET /length HTTP/1.1\r\n\r\n")
        await asyncio.wait_for(reader.readexactly(len(RESPONSES[b"/length"])), 5)
        out.append((time.perf_counter() - started_s) * 1000)
    writer.close()
    return out


@pytest.mark.parametrize("mode", ["per-request", "per-connection"])
def test_the_round_trip_is_added_to_each_request_within_its_jitter(run, mode):
    """Against the same pod in the same run: a plain Service, and one 60 +- 20 ms away."""

    async def main():
        server, endpoint = await pod("a")
        plain = await started([endpoint], mode)
        far = await started([endpoint], mode, RoundTrip(60, 20))
        try:
            await _latencies_ms(plain.port, 2)  # warm-up
            plain_ms, far_ms = [], []
            for _ in range(3):  # alternating, so a busy moment of the machine hits both
                plain_ms += await _latencies_ms(plain.port, 5)
                far_ms += await _latencies_ms(far.port, 5)
            return plain_ms, far_ms
        finally:
            await plain.stop()
            await far.stop()
            server.close()

    plain_ms, far_ms = run(main())
    assert min(far_ms) >= 40  # never early: each way holds a write at least (60 - 20) / 2 ms
    added = statistics.median(far_ms) - statistics.median(plain_ms)
    assert 40 <= added <= 80 + 100  # within 60 +- 20 ms, bounded widely above: a busy machine only adds
    assert max(far_ms) - min(far_ms) > 5  # the jitter spreads them


def test_run_metadata_records_the_round_trip_of_the_service_a_run_went_through():
    near, far = service(), service("model-serving-far", **{ANNOTATION: "30ms", JITTER_ANNOTATION: "5ms"})
    with LocalCluster(service_port=0) as cluster:
        cluster.apply([near, far, deployment(replicas=1)])
        cluster.wait_ready("model-serving-deployment", timeout=60)
        runs = {url: load.run_closed(url, users=1, duration=0.5, cluster=cluster, progress=False)
                for url in (cluster.service_url(), cluster.service_url("model-serving-far"), cluster.pods()[0].url)}
        far["metadata"]["annotations"][ANNOTATION] = "40ms"  # changed on a re-apply: the proxy follows it
        cluster.apply(far)
        after = cluster.run_metadata()["services"]
    (near_run, far_run, pod_run) = runs.values()
    assert (far_run.meta["added_round_trip_ms"], far_run.meta["added_round_trip_jitter_ms"]) == (30.0, 5.0)
    assert near_run.meta["added_round_trip_ms"] == pod_run.meta["added_round_trip_ms"] == 0.0
    assert all(r.ok_count > 0 and r.ok_count == len(r.frame) for r in runs.values())
    assert far_run.frame["latency_s"].min() >= 0.025  # 30 - 5 ms, never less
    assert {s["name"]: s["added_round_trip_ms"] for s in after} == {"model-serving": 0.0, "model-serving-far": 40.0}
