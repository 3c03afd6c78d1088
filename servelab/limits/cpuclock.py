"""The CPU time a process tree has used, read the same way by the userspace enforcer and for pods
that no rung holds, so the HPA and the cost model see one number whatever holds the pod.

Linux: one clock_gettime per process on the kernel's CPU clock of that process (all its threads,
in ns, the scheduler's own count: no /proc text to parse every few ms). Elsewhere (macOS): psutil's
cpu_times, which macOS reports at fine resolution. The tree (children, grandchildren, and orphans
still in a root's process group) is re-listed every REFRESH_S. A process that exits keeps the CPU it
was last seen with, so the total never goes back.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import psutil

REFRESH_S = 0.1
_LINUX = sys.platform.startswith("linux")


def process_cpu_ns(pid: int) -> int | None:
    """CPU time used so far by process `pid` (every thread), in ns; None once it is gone."""
    if _LINUX:
        try:
            # MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED) from the kernel's posix-timers.h.
            return time.clock_gettime_ns(((~pid) << 3) | 2)
        except OSError:
            return None
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return None
    return int((times.user + times.system) * 1e9)


def gone(pid: int) -> bool:
    """Whether process `pid` has exited (a zombie waiting to be reaped counts as exited)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


def _children(pid: int) -> list[int]:
    """Direct children of `pid`: /proc/<pid>/task/*/children on Linux (cheap), else psutil."""
    task = Path(f"/proc/{pid}/task")
    if _LINUX and task.is_dir():
        found: list[int] = []
        try:
            for thread in task.iterdir():
                found += [int(p) for p in (thread / "children").read_text().split()]
        except (OSError, ValueError):
            pass
        return found
    try:
        return [c.pid for c in psutil.Process(pid).children()]
    except psutil.Error:
        return []


def _group_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def descendants(pid: int) -> set[int]:
    """Every process below `pid` in the process tree (not `pid` itself)."""
    found, todo = set(), [pid]
    while todo:
        for child in _children(todo.pop()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


class TreeClock:
    """Cumulative CPU of every process ever added (and of their descendants), in ns."""

    def __init__(self) -> None:
        self.roots: set[int] = set()
        self._last: dict[int, int] = {}  # member pid -> CPU ns when last read
        self._banked = 0  # CPU of members that are gone
        self._listed_at = -float("inf")

    def add(self, pid: int) -> None:
        self.roots.add(pid)
        self._listed_at = -float("inf")

    def members(self) -> list[int]:
        """The tree as last listed: roots, their descendants, and orphans left in a root's group."""
        return list(self._last)

    def groups(self) -> set[int]:
        """Process groups led by a root (a pod is started in its own session, so its group is its tree)."""
        return {root for root in self.roots if _group_of(root) == root}

    def _relist(self) -> None:
        groups = self.groups()
        tree = set(self.roots)
        for root in self.roots:
            tree |= descendants(root)
        tree |= {pid for pid in self._last if _group_of(pid) in groups}
        for pid in set(self._last) - tree:
            self._banked += self._last.pop(pid, 0)
        for pid in tree - set(self._last):
            self._last[pid] = 0
        self._listed_at = time.monotonic()

    def read_ns(self) -> int:
        """Total CPU ns now (re-listing the tree when REFRESH_S has passed since the last time)."""
        if time.monotonic() - self._listed_at >= REFRESH_S:
            self._relist()
        for pid, last in list(self._last.items()):
            now = process_cpu_ns(pid)
            if now is None:
                self._banked += self._last.pop(pid, 0)
                self.roots.discard(pid)
            elif now < last:  # the pid was reused by a new process: bank the old one's time
                self._banked += last
                self._last[pid] = now
            else:
                self._last[pid] = now
        return self._banked + sum(self._last.values())
