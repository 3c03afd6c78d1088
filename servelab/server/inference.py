"""Where predictions run: inline on the event loop, or on N model instances in threads.

One worker (the default): the model runs inline on the event loop. A thread hop would cost
more than the tiny model's whole inference, and one core is all a 1-worker pod uses anyway.

N workers (`--workers N`): N instances of the model, each an onnxruntime session with its own
intra-op thread(s), each owned by one thread of a pool of N. onnxruntime releases the GIL while
it computes, so N predictions compute at once on N cores while the event loop goes on reading
and answering requests. This is Triton's instance count and TF Serving's thread pool. Threads,
not N processes, so that admission, draining and /metrics stay one process's counts: N uvicorn
workers would each have their own in-flight limit, readiness and metrics.

Dynamic batching and stall injection sit in front of either.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from time import perf_counter

import numpy as np

from servelab.core.models import Model
from servelab.server.batching import Batcher
from servelab.server.faults import Stall
from servelab.server.metrics import Metrics


class Inference:
    """Runs `model` for the server: `inline` says whether `run` may be called on the event loop."""

    def __init__(self, model: str, threads: int, workers: int, metrics: Metrics, *,
                 batch_max_size: int = 0, batch_max_delay_s: float = 0.0, stall: Stall | None = None):
        self.workers = workers
        self.metrics = metrics
        self.models = [Model(model, threads=threads) for _ in range(workers)]
        self.model = self.models[0]
        self._model_run = self.model.run
        self._pool: ThreadPoolExecutor | None = None
        if workers > 1:
            spare: queue.SimpleQueue[Model] = queue.SimpleQueue()
            for instance in self.models:
                spare.put(instance)
            self._mine = threading.local()

            def claim() -> None:  # each pool thread takes one model instance for its whole life
                self._mine.model = spare.get_nowait()

            self._pool = ThreadPoolExecutor(workers, thread_name_prefix="servelab-model", initializer=claim)
        self.stall = stall
        self.batcher = Batcher(self._run_batch, batch_max_size, batch_max_delay_s) if batch_max_size else None
        self.inline = self._pool is None and self.batcher is None and stall is None

    def run(self, x: np.ndarray) -> tuple[np.ndarray, float]:
        """One inference call on the event loop's thread: (probabilities, model seconds)."""
        start = perf_counter()
        p = self._model_run(x)
        seconds = perf_counter() - start
        self.metrics.inference(seconds, len(x))
        return p, seconds

    async def predict(self, x: np.ndarray) -> tuple[np.ndarray, float]:
        """This request's probabilities and the model time of the call that computed them."""
        if self.stall is not None:
            wait = self.stall.remaining()
            if wait > 0:
                await asyncio.sleep(wait)
        if self.batcher is not None:
            return await self.batcher.predict(x)
        return await self._run_batch(x)

    async def _run_batch(self, x: np.ndarray) -> tuple[np.ndarray, float]:
        if self._pool is None:
            return self.run(x)
        p, seconds = await asyncio.get_running_loop().run_in_executor(self._pool, self._run_in_thread, x)
        self.metrics.inference(seconds, len(x))  # recorded on the event loop, the metrics' only writer
        return p, seconds

    def _run_in_thread(self, x: np.ndarray) -> tuple[np.ndarray, float]:
        start = perf_counter()
        p = self._mine.model.run(x)
        return p, perf_counter() - start

    def close(self) -> None:
        """Wait for the model threads to finish what they run (the drain has already waited for requests)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
