"""Dynamic batching: requests that arrive close together share one inference call.

A model call has a fixed cost (framework overhead, reading the weights from memory) that a
batch pays once. The batcher holds each request for at most `max_delay_s`, or until
`max_size` rows are waiting, then runs everything pending in as few calls as it can (at most
`max_size` rows each; a request is never split) and hands each request its own rows back.
Each batch runs as its own task, so with several model workers several batches compute at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import numpy as np

Run = Callable[[np.ndarray], Awaitable[tuple[np.ndarray, float]]]


class Batcher:
    """Collects [n, 3] requests into batches for `await run(x) -> (probabilities, seconds)`."""

    def __init__(self, run: Run, max_size: int, max_delay_s: float):
        if max_size < 2:
            raise ValueError(f"batch max size must be at least 2 (got {max_size}); leave it unset for no batching")
        if max_delay_s < 0:
            raise ValueError(f"batch max delay must be >= 0 (got {max_delay_s})")
        self._run = run
        self.max_size = max_size
        self.max_delay_s = max_delay_s
        self._pending: list[tuple[np.ndarray, asyncio.Future]] = []
        self._rows = 0
        self._timer: asyncio.TimerHandle | None = None
        self._running: set[asyncio.Task] = set()  # batches being computed (the loop keeps only weak references)

    async def predict(self, x: np.ndarray) -> tuple[np.ndarray, float]:
        """This request's probabilities and the model time of the batch it rode in."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.append((x, future))
        self._rows += len(x)
        if self._rows >= self.max_size:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self.max_delay_s, self._flush)
        return await future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending, self._pending, self._rows = self._pending, [], 0
        batch: list[tuple[np.ndarray, asyncio.Future]] = []
        rows = 0
        for item in pending:
            if batch and rows + len(item[0]) > self.max_size:
                self._start(batch)
                batch, rows = [], 0
            batch.append(item)
            rows += len(item[0])
        if batch:
            self._start(batch)

    def _start(self, batch: list[tuple[np.ndarray, asyncio.Future]]) -> None:
        task = asyncio.get_running_loop().create_task(self._run_batch(batch))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run_batch(self, batch: list[tuple[np.ndarray, asyncio.Future]]) -> None:
        try:
            p, seconds = await self._run(np.concatenate([x for x, _ in batch]) if len(batch) > 1 else batch[0][0])
        except Exception as error:  # every waiting request gets the failure, none hangs
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        start = 0
        for x, future in batch:
            if not future.done():  # a cancelled request (client gone) just drops its rows
                future.set_result((p[start : start + len(x)], seconds))
            start += len(x)
