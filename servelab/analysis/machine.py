"""What this machine offers the labs: its usable cores, as a scheduler or a JupyterHub would count them."""

from __future__ import annotations

import os
from pathlib import Path


def usable_cores() -> float:
    """Cores this process may use: its CPU affinity, lowered by a CPU quota on its own cgroup.

    `os.cpu_count()` counts the host's CPUs; a container or a JupyterHub server is often allowed
    fewer, either by affinity (cpusets) or by a CFS quota on the cgroup it runs in (1 CPU on a
    small hosted server), and every experiment must fit in what is really there.
    """
    cores = float(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    quota = _cgroup_quota_cores()
    return min(cores, quota) if quota else cores


def _cgroup_quota_cores() -> float | None:
    """The CPU quota (cores) of this process's own cgroup, v2 `cpu.max` or v1 cfs files, if any."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # cgroup v2
            text = _read(Path("/sys/fs/cgroup") / path.lstrip("/") / "cpu.max")
            if text and not text.startswith("max"):
                quota, period = text.split()
                return int(quota) / int(period)
        elif "cpu" in controllers.split(","):
            base = Path("/sys/fs/cgroup/cpu") / path.lstrip("/")
            quota, period = _read(base / "cpu.cfs_quota_us"), _read(base / "cpu.cfs_period_us")
            if quota and period and int(quota) > 0:
                return int(quota) / int(period)
    return None


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None
