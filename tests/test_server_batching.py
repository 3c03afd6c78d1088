"""Dynamic batching: the same answers as one call per request, in fewer model calls."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from server_fixtures import call, metric

from servelab.core.models import Model
from servelab.server import ServerProcess, protocols
from servelab.server.batching import Batcher


def test_batcher_splits_results_back_and_respects_max_size():
    calls: list[int] = []

    async def run(x):
        calls.append(len(x))
        return x.sum(axis=1), 0.001

    async def scenario():
        batcher = Batcher(run, max_size=4, max_delay_s=0.05)
        requests = [np.full((n, 3), i, np.float32) for i, n in enumerate([1, 2, 1, 3, 1, 6])]
        return requests, await asyncio.gather(*(batcher.predict(x) for x in requests))

    requests, answers = asyncio.run(scenario())
    for x, (p, seconds) in zip(requests, answers):
        assert p.tolist() == x.sum(axis=1).tolist() and seconds == 0.001
    assert sum(calls) == 14 and len(calls) < 6
    assert all(n <= 4 for n in calls if n != 6)  # only a single request larger than max runs alone


def test_batcher_passes_a_failure_to_every_waiting_request():
    async def run(x):
        raise RuntimeError("model failed")

    async def scenario():
        batcher = Batcher(run, max_size=8, max_delay_s=0.01)
        return await asyncio.gather(*(batcher.predict(np.zeros((1, 3), np.float32)) for _ in range(3)), return_exceptions=True)

    assert [str(e) for e in asyncio.run(scenario())] == ["model failed"] * 3


def test_batcher_rejects_nonsense_settings():
    with pytest.raises(ValueError, match="at least 2"):
        Batcher(lambda x: asyncio.sleep(0, (x, 0.0)), max_size=1, max_delay_s=0.01)


def test_batching_server_gives_the_same_answers_in_fewer_model_calls():
    rows = np.random.default_rng(7).uniform(0, 10, size=(40, 3)).round(3)
    expected = [protocols.display(Model("tiny").predict(row[None, :].astype(np.float32)))[0] for row in rows]
    with ServerProcess(batch_max_size=16, batch_max_delay_ms=50) as server:
        with ThreadPoolExecutor(20) as pool:
            replies = list(pool.map(lambda r: call("POST", server.predict_url, '{"instances": [%s]}' % list(r)), rows.tolist()))
        assert [r.status for r in replies] == [200] * 40
        assert [r.json()["predictions"][0] for r in replies] == expected
        calls = metric(server.url, "servelab_batch_size_count")
        assert calls < 40, "no request shared a model call"
        assert metric(server.url, "servelab_batch_size_sum") == 40
