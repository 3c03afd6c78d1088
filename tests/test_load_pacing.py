"""The open loop's pacer: never early, on time to within the loop's wake-up, and clean to close."""

from __future__ import annotations

import asyncio
import os
import sys
import time

import pytest

from servelab.load import generator
from servelab.load.pacing import Pacer


def run(coro_fn):
    loop = generator.new_event_loop()  # the generator's own loop kind (uvloop when installed)
    try:
        return loop.run_until_complete(coro_fn())
    finally:
        loop.close()


@pytest.mark.parametrize("use_timerfd", [True, False])
def test_never_returns_before_the_due_time(use_timerfd):
    async def body():
        pacer = Pacer(use_timerfd)
        try:
            start = time.monotonic()
            dues = [start + 0.0005 * k for k in range(1, 200)]  # every 0.5 ms: below the loop's 1 ms timers
            woke = []
            for due in dues:
                await pacer.until(due)
                woke.append(time.monotonic())
            return pacer.kind, dues, woke
        finally:
            pacer.close()

    kind, dues, woke = run(body)
    if sys.platform.startswith("linux") or not use_timerfd:
        assert kind == ("timerfd" if use_timerfd else "asyncio.sleep")
    assert all(w >= d for w, d in zip(woke, dues))
    assert woke[-1] - dues[-1] < 1.0  # it did wake up for the last one (a generous bound: shared machines)


def test_a_past_due_time_returns_at_once_without_arming():
    async def body():
        pacer = Pacer()
        try:
            before = time.monotonic()
            await pacer.until(before - 1.0)
            return time.monotonic() - before
        finally:
            pacer.close()

    assert run(body) < 0.5


def test_cancelled_wait_leaves_the_pacer_usable_and_close_frees_the_fd():
    async def body():
        pacer = Pacer()
        fd = pacer._fd
        waiting = asyncio.ensure_future(pacer.until(time.monotonic() + 60))
        await asyncio.sleep(0.01)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        due = time.monotonic() + 0.002
        await pacer.until(due)
        assert time.monotonic() >= due
        pacer.close()
        return fd

    fd = run(body)
    if fd >= 0:
        with pytest.raises(OSError):
            os.fstat(fd)  # closed
