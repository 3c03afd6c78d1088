"""Waiting on an event loop until a request's intended send time, to a tenth of a millisecond.

An event loop's own timers count whole milliseconds (libuv's clock, epoll's timeout), so a
request due 0.4 ms from now leaves up to a millisecond late, and an open-loop latency, measured
from the intended time, carries that lateness. On Linux a timerfd armed at the due time itself
(absolute, on CLOCK_MONOTONIC, the clock of `time.monotonic`) wakes the loop within about a
tenth of a millisecond: at 500 requests/s on the 2-core machine, the send lag's p50 was 0.09 ms
against 0.29 ms with `asyncio.sleep`, for less CPU, since no loop spins through sub-millisecond
waits (`python -m bench load` prints both side by side). Where timerfd is missing (macOS), the
pacer falls back to `asyncio.sleep`, and `Pacer.kind` says which one ran.

ctypes, because `os.timerfd_create` and `os.timerfd_settime_ns` arrive only in Python 3.13.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import sys
import time

_CLOCK_MONOTONIC = 1
_TFD_NONBLOCK, _TFD_CLOEXEC, _TFD_TIMER_ABSTIME = os.O_NONBLOCK, os.O_CLOEXEC, 1


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _libc() -> ctypes.CDLL | None:
    """The C library's timerfd calls, or None where there are none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.timerfd_create.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.timerfd_settime.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(_Itimerspec), ctypes.c_void_p]
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _libc()


class Pacer:
    """Sleeps on the running loop until an absolute `time.monotonic()` time; one waiter at a time.

    `use_timerfd=False` waits with `asyncio.sleep` even where a timerfd exists (to compare the two).
    """

    def __init__(self, use_timerfd: bool = True) -> None:
        self._loop = asyncio.get_running_loop()
        self._fd = -1
        self._waiter: asyncio.Future | None = None
        if use_timerfd and _LIBC is not None:
            self._fd = _LIBC.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
        if self._fd >= 0:
            self._spec = _Itimerspec()
            self._loop.add_reader(self._fd, self._fired)
        self.kind = "timerfd" if self._fd >= 0 else "asyncio.sleep"

    async def until(self, due: float) -> None:
        """Return at `due` (monotonic seconds) or just after; at once if it has passed. Never early."""
        while (delay := due - time.monotonic()) > 0:
            if self._fd < 0:
                await asyncio.sleep(delay)
                continue
            self._spec.it_value.tv_sec, self._spec.it_value.tv_nsec = divmod(int(due * 1e9) + 1, 1_000_000_000)
            if _LIBC.timerfd_settime(self._fd, _TFD_TIMER_ABSTIME, ctypes.byref(self._spec), None) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"timerfd_settime failed: {os.strerror(err)}")
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def close(self) -> None:
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1

    def _fired(self) -> None:
        try:
            os.read(self._fd, 8)  # the expiration count; reading it clears the fd's readiness
        except BlockingIOError:  # re-armed since it became readable: nothing to wake for yet
            return
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
