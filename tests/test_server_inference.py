"""`--workers N`: N model instances compute at once; with one worker, calls run one after another."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from server_fixtures import call

from servelab.server import ServerProcess
from servelab.server.admission import Admission
from servelab.server.inference import Inference
from servelab.server.metrics import Metrics


def _inference(workers: int) -> Inference:
    return Inference("tiny", threads=1, workers=workers, metrics=Metrics(Admission(10, 10)))


def test_two_workers_run_two_calls_at_the_same_time_each_on_its_own_model():
    inference = _inference(workers=2)
    both_inside = threading.Barrier(2, timeout=20)  # passes only if both calls are in a model at once
    used = []

    def meets_the_other(model_run):
        def run(x):
            used.append(model_run)
            both_inside.wait()
            return model_run(x)
        return run

    for model in inference.models:
        model.run = meets_the_other(model.run)

    async def two_calls():
        x = np.array([[1.0, 2.0, 5.0]], np.float32)
        return await asyncio.gather(inference.predict(x), inference.predict(x))

    try:
        answers = asyncio.run(two_calls())
    finally:
        inference.close()
    assert [round(float(p[0]), 6) for p, _ in answers] == [0.75, 0.75]
    assert len(set(used)) == 2  # two different model instances
    assert inference.metrics.inference_seconds.counts != [0] * len(inference.metrics.inference_seconds.counts)


def test_one_worker_runs_inline_on_the_event_loop():
    inference = _inference(workers=1)
    assert inference.inline and len(inference.models) == 1


def _two_slow_requests(server: ServerProcess, rows: int) -> tuple[float, list[float]]:
    """Two requests of `rows` rows sent together: (seconds until both answered, each one's model seconds)."""
    body = '{"instances": %s}' % ([[1.0, 2.0, 5.0]] * rows)
    call("POST", server.predict_url, '{"instances": [1.0, 2.0, 5.0]}')  # warm-up
    start = time.monotonic()
    with ThreadPoolExecutor(2) as pool:
        replies = list(pool.map(lambda _: call("POST", server.predict_url, body, timeout=120), range(2)))
    both = time.monotonic() - start
    assert [r.status for r in replies] == [200, 200]
    return both, [float(r.headers["server-timing"].split("dur=")[1]) / 1000 for r in replies]


@pytest.mark.parametrize(("workers", "overlap"), [(1, False), (2, True)])
def test_slow_requests_overlap_in_the_model_only_with_two_workers(workers, overlap):
    """Each reply says how long its model call took. When the calls overlapped, they add up to more
    than the time both requests took end to end; one after the other, never. Whatever the
    machine's speed or load, so the bound needs no tuning."""
    with ServerProcess(model="large", workers=workers) as server:
        both, model_s = _two_slow_requests(server, rows=6000)
    assert (sum(model_s) > both) == overlap, (both, model_s)
