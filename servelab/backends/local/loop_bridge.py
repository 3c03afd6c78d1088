"""The thread and asyncio loop a local cluster runs on, and the one way its callers reach it.

Every controller and every read of the cluster's objects runs on this loop, so they never race;
public methods hand work to it and wait, so a Jupyter kernel's own event loop is never blocked or borrowed.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


async def _returning(fn: Callable[..., T], *args: Any) -> T:
    return fn(*args)


class LoopBridge:
    """A daemon thread running its own event loop until `close`."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.closed = False
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run `coro` on the loop and wait for its result (or its exception)."""
        if self.closed:
            coro.close()
            raise RuntimeError("this cluster is closed; create a new one with servelab.connect()")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def read(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` on the loop's thread, so it sees the objects between two controller steps, never during one."""
        return self.call(_returning(fn, *args))

    def close(self, last: Coroutine[Any, Any, Any], timeout: float) -> None:
        """Run `last` (the shutdown), then stop the loop and its thread, even if `last` failed."""
        try:
            asyncio.run_coroutine_threadsafe(last, self.loop).result(timeout)
        finally:
            self.closed = True
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
