"""Prometheus metrics of one server process, served at /metrics.

Each server has its own registry (with the process collector, whose CPU seconds the local
autoscaler can read), so tests can build several apps in one process. The hot path touches
pre-bound label children only: a metric update costs about a microsecond.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Gauge, Histogram, ProcessCollector, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    """Request latency by endpoint and status, in-flight, batch sizes and model time."""

    def __init__(self, in_flight: Callable[[], float]):
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.request_seconds = Histogram(
            "servelab_request_duration_seconds",
            "Time from the request reaching the app to its response, by endpoint and HTTP status.",
            ["endpoint", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.inference_seconds = Histogram(
            "servelab_inference_duration_seconds",
            "Model time of one inference call (one batch).",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "servelab_batch_size",
            "Rows per inference call.",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        Gauge(
            "servelab_requests_in_flight",
            "Requests received and not yet answered (all endpoints).",
            registry=self.registry,
        ).set_function(in_flight)
        self._ok = {
            endpoint: self.request_seconds.labels(endpoint, "200").observe for endpoint in ("predict", "infer")
        }

    def request(self, endpoint: str, status: int, seconds: float) -> None:
        if status == 200:
            self._ok[endpoint](seconds)
        else:
            self.request_seconds.labels(endpoint, str(status)).observe(seconds)

    def inference(self, seconds: float, rows: int) -> None:
        self.inference_seconds.observe(seconds)
        self.batch_size.observe(rows)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
