"""A uniformly slower CPU, emulated inside the process that runs on it (lab 06's edge device).

A CPU limit is not a slower CPU. A quota (cgroup or userspace) lets a process run at full speed
until its share of a period is spent, then stops it for the rest of the period: most short
predictions run at full speed and one per period waits most of a period. A shorter period does not
fix it for small shares: the kernel grants at least 1 ms of quota per period, so a period of a few
ms cannot hold a process to a few % of a core. Pacing can, on any machine and with no privilege:
after each call, wait (1/share - 1) x the CPU time the call used, so every call takes as long as it
would on a CPU 1/share times slower. The process's CPU clock (every thread) is what is scaled, so
work on a runtime's own threads counts too.
"""

from __future__ import annotations

import time


class SlowerCpu:
    """`with cpu:` around each call makes it take 1/`share` times its CPU time, as on a slower CPU."""

    def __init__(self, share: float):
        if not 0 < share <= 1:
            raise ValueError(f"a slower CPU's share of this one must be in (0, 1], not {share!r}: "
                             "1 is this machine's speed, 0.1 a CPU ten times slower")
        self.share = share
        self._started_cpu = 0.0

    def __enter__(self) -> SlowerCpu:
        self._started_cpu = time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        used = time.process_time() - self._started_cpu
        time.sleep(used * (1 / self.share - 1))

    def describe(self) -> str:
        """What is emulated, in a sentence a lab can print."""
        return (f"a CPU {1 / self.share:.3g}x slower than this machine's ({self.share:g} of one of its cores), emulated "
                f"inside the device process: after each prediction it waits {1 / self.share - 1:.3g}x the CPU time the "
                "prediction took, so every prediction takes about 1/share as long (not a quota that runs some at full speed)")
