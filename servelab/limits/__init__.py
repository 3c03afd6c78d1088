"""CPU and memory limits for the processes servelab starts (pods, a batch Job), on a ladder of rungs
tried best first on this machine, and each pod's CPU read from the same place the limit is held.

    ladder = limits.detect()               # or detect(prefer="userspace"); $SERVELAB_LIMITS forces one
    held = ladder.hold("pod-a", cpu_limit=0.5, memory_limit=256 * 2**20)
    process = processes.start(held.command(argv))   # servelab.core.processes: its own process group
    held.add(process.pid)                  # "" when held, else the problem; held.rung says by what
    held.cpu_used_s()                      # CPU seconds, for the HPA and for cost
    held.remove(); ladder.close()

- ladder.py: the rungs, tried in order (`detect`, `Ladder`), and what each one means
- held.py: what every rung gives a pod (`Held`), and the unheld pod's CPU reading
- cgroup.py / user_scope.py / userspace.py: the three rungs; enforcer.py: the userspace enforcer process
- cgroupfs.py: cgroup files, through a `Host` that tests point at a fake tree
- cpuclock.py: a process tree's CPU time; slower_cpu.py: a uniformly slower CPU, for an edge device
"""

from __future__ import annotations

from servelab.limits.held import Held
from servelab.limits.ladder import CHOICES, MEANING, RUNGS, Ladder, detect, warn_once

__all__ = ["CHOICES", "MEANING", "RUNGS", "Held", "Ladder", "detect", "warn_once"]
