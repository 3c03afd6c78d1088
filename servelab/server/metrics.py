"""Prometheus metrics of one server process, served at /metrics.

Each server has its own registry (with the process collector, whose CPU seconds the local
autoscaler can read), so tests can build several apps in one process.

The hot path records into `Buckets`, a plain list of counts updated with bisect (a quarter of
a microsecond, against about three for prometheus_client's locked Histogram.observe); the
counts are turned into Prometheus histograms only when /metrics is scraped. The event loop is
the only writer, so no lock is needed.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import (
    CollectorRegistry,
    Gauge,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.utils import floatToGoString

from servelab.server.admission import Admission

LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Buckets:
    """One histogram's counts: `observe(value)` in O(log buckets), no lock."""

    def __init__(self, bounds: tuple[float, ...]):
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def cumulative(self) -> list[tuple[str, int]]:
        total, out = 0, []
        for bound, count in zip((*map(floatToGoString, self.bounds), "+Inf"), self.counts):
            total += count
            out.append((bound, total))
        return out


class Metrics:
    """Request latency by endpoint and status, in-flight, connections, batch sizes and model time."""

    def __init__(self, admission: Admission):
        self.registry = CollectorRegistry()
        self.admission = admission
        ProcessCollector(registry=self.registry)
        Gauge(
            "servelab_requests_in_flight",
            "Predictions admitted and not yet answered (the count --max-concurrency bounds).",
            registry=self.registry,
        ).set_function(lambda: admission.in_flight)
        Gauge(
            "servelab_connections_open",
            "HTTP connections open (the count --max-connections bounds).",
            registry=self.registry,
        ).set_function(lambda: admission.connections)
        self.requests: dict[tuple[str, int], Buckets] = {}
        self.inference_seconds = Buckets(LATENCY_BUCKETS)
        self.batch_size = Buckets(BATCH_BUCKETS)
        self.registry.register(self)

    def request(self, endpoint: str, status: int, seconds: float) -> None:
        key = (endpoint, status)
        buckets = self.requests.get(key)
        if buckets is None:
            buckets = self.requests[key] = Buckets(LATENCY_BUCKETS)
        buckets.observe(seconds)

    def inference(self, seconds: float, rows: int) -> None:
        self.inference_seconds.observe(seconds)
        self.batch_size.observe(rows)

    def collect(self) -> Iterator[HistogramMetricFamily | CounterMetricFamily]:
        """Called by the registry on each scrape."""
        yield CounterMetricFamily(
            "servelab_connections_refused",
            "Connections answered with a 503 and closed because --max-connections were open.",
            value=self.admission.refused_connections,
        )
        requests = HistogramMetricFamily(
            "servelab_request_duration_seconds",
            "Time from the request reaching the app to its response, by endpoint and HTTP status.",
            labels=["endpoint", "status"],
        )
        for (endpoint, status), buckets in sorted(self.requests.items()):
            requests.add_metric([endpoint, str(status)], buckets.cumulative(), buckets.sum)
        yield requests
        for name, doc, buckets in (
            ("servelab_inference_duration_seconds", "Model time of one inference call (one batch).", self.inference_seconds),
            ("servelab_batch_size", "Rows per inference call.", self.batch_size),
        ):
            family = HistogramMetricFamily(name, doc)
            family.add_metric([], buckets.cumulative(), buckets.sum)
            yield family

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
