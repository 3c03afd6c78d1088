"""What every rung gives a pod: a `Held` that takes its processes, reads their CPU and lets go.

A pod reads its CPU (for the HPA's utilization and for cost) through `cpu_used_s()` whatever
holds it: the rung's own counter while the rung holds it, the process tree's CPU clock
(servelab.limits.cpuclock) when nothing does, so an unheld pod is still measured.
"""

from __future__ import annotations

from servelab.limits.cpuclock import TreeClock


class Held:
    """One pod's limits. `rung` names what enforces them; `problem` says why not, when not."""

    rung: str | None = None

    def __init__(self, problem: str = "") -> None:
        self._problem = problem
        self.passed: list[str] = []  # why better rungs did not take this pod
        self._clock = TreeClock()
        self._used_s = 0.0

    @property
    def problem(self) -> str:
        return self._problem

    @property
    def held(self) -> bool:
        return self.rung is not None and not self.problem

    def command(self, argv: list[str]) -> list[str]:
        """The command that starts `argv` under this limit (a rung that must start the process itself wraps it)."""
        return argv

    def add(self, pid: int) -> str:
        """Put process `pid` (and what it starts) under the limit; returns the problem, "" when held."""
        self._clock.add(pid)
        if not self._problem:
            self._problem = self._add(pid)
        return self._problem

    def _add(self, pid: int) -> str:
        return ""

    def cpu_used_s(self) -> float:
        """CPU seconds used by everything ever added, never going back."""
        used = self._rung_cpu_s() if self.held else None
        if used is None:
            used = self._clock.read_ns() / 1e9
        self._used_s = max(self._used_s, used)
        return self._used_s

    def _rung_cpu_s(self) -> float | None:
        return None

    def remove(self) -> None:
        """Let go: the processes have exited (or are about to); remove what holding them created."""
