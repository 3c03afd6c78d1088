"""A uniformly slower CPU, emulated inside the process that runs on it (lab 06's edge device).

A CPU limit is not a slower CPU. A quota (cgroup or userspace) lets a process run at full speed
until its share of a period is spent, then stops it for the rest of the period: most short
predictions run at full speed and one per period waits most of a period. A shorter period does not
fix it for small shares: the kernel grants at least 1 ms of quota per period, so a period of a few
ms cannot hold a process to a few % of a core. Pacing can, on any machine and with no privilege:
each call is made to last 1/share times what it costs this machine, as on a CPU 1/share times slower.

What it costs this machine is measured first, with the call made back to back (`calibrate`), not
from each paced call's own CPU time: a call that follows a wait finds its data evicted from the
caches other programs share, and on a busy machine measured 3-15x its back-to-back CPU time
here, which would make the device many times slower than asked, and differently in every run.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

CALIBRATION_CALLS = 20


class SlowerCpu:
    """`with cpu:` around each call makes it last 1/`share` times the call's back-to-back CPU time here."""

    def __init__(self, share: float):
        if not 0 < share <= 1:
            raise ValueError(f"a slower CPU's share of this one must be in (0, 1], not {share!r}: "
                             "1 is this machine's speed, 0.1 a CPU ten times slower")
        self.share = share
        self.call_cpu_s: float | None = None
        self._started = 0.0

    def calibrate(self, call: Callable[[], object], n: int = CALIBRATION_CALLS) -> float:
        """Median CPU seconds of `call` made `n` times back to back: what one call costs this machine."""
        spent = []
        for _ in range(n):
            started = time.process_time()
            call()
            spent.append(time.process_time() - started)
        self.call_cpu_s = statistics.median(spent)
        return self.call_cpu_s

    def __enter__(self) -> SlowerCpu:
        if self.call_cpu_s is None:
            raise RuntimeError("SlowerCpu.calibrate(call) first: pacing needs what one call costs this machine")
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        """Wait out the rest of the slower CPU's time for the call (none if the call took longer itself)."""
        time.sleep(max(0.0, self.call_cpu_s / self.share - (time.perf_counter() - self._started)))

    def describe(self) -> str:
        """What is emulated, in a sentence a lab can print."""
        per_call = "" if self.call_cpu_s is None else (
            f" ({self.call_cpu_s * 1000:.3g} ms back to back here, so {self.call_cpu_s / self.share * 1000:.3g} ms each)")
        return (f"a CPU {1 / self.share:.3g}x slower than one of this machine's cores, emulated inside the device "
                f"process: every prediction is made to last {1 / self.share:.3g}x the CPU time it takes here"
                f"{per_call}, not a quota that runs most at full speed and stalls a few")
