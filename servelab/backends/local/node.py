"""The local cluster's one node: what this machine can hold, and whether a pod fits on it.

A Kubernetes scheduler places a pod on a node only if the pod's *requests* fit next to the
requests of the pods already there; otherwise the pod stays Pending until room appears. The
local cluster schedules against `allocatable()`, and the labs size their experiments with the
same numbers, so "4 pods of 0.5 CPU" on a 1-CPU JupyterHub shows Pending pods, not a crash.

    from servelab.backends.local.node import allocatable
    node = allocatable()          # e.g. Allocatable(cpu_cores=2.0, memory_bytes=..., pods=110, ...)
    node.fits(cpu_request=0.5, memory_request=256 * 2**20)  # -> 4: how many such pods fit
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import psutil

MAX_PODS = 110  # kubelet's default --max-pods: a node runs at most this many pods
_NO_LIMIT = 2**62  # cgroup v1 writes "no memory limit" as a number near 2**63


@dataclass(frozen=True)
class Allocatable:
    """A node's allocatable resources, and where each figure came from."""

    cpu_cores: float
    memory_bytes: int
    pods: int = MAX_PODS
    cpu_source: str = ""
    memory_source: str = ""

    @property
    def cpu_millicores(self) -> int:
        return int(round(self.cpu_cores * 1000))

    def fits(self, cpu_request: float, memory_request: int) -> int:
        """How many pods with these requests fit on the empty node."""
        counts = [self.pods]
        if _millicores(cpu_request) > 0:
            counts.append(self.cpu_millicores // _millicores(cpu_request))
        if memory_request > 0:
            counts.append(self.memory_bytes // memory_request)
        return min(counts)

    def unschedulable(self, placed: Iterable[tuple[float, int]], cpu_request: float, memory_request: int) -> str | None:
        """Why a pod with these requests does not fit next to `placed` ((cpu, memory) requests of the
        pods already on the node), in the scheduler's words; None when it fits."""
        placed = list(placed)
        cpu = _millicores(cpu_request) + sum(_millicores(c) for c, _ in placed)
        memory = memory_request + sum(m for _, m in placed)
        reasons = []
        if cpu_request > 0 and cpu > self.cpu_millicores:
            reasons.append("Insufficient cpu")
        if memory_request > 0 and memory > self.memory_bytes:
            reasons.append("Insufficient memory")
        if len(placed) + 1 > self.pods:
            reasons.append("Too many pods")
        return f"0/1 nodes are available: {', '.join(f'1 {r}' for r in reasons)}." if reasons else None

    def __str__(self) -> str:
        return (f"{self.cpu_cores:g} CPU ({self.cpu_source}), {self.memory_bytes / 2**30:.1f} GiB memory "
                f"({self.memory_source}), {self.pods} pods")


def _millicores(cores: float) -> int:
    return int(round(cores * 1000))


def allocatable() -> Allocatable:
    """What this machine can hold, as a scheduler sees one node (nothing reserved for the system).

    CPU: the cores this process may run on (its affinity where the OS has one, else all), or less
    when the cgroup it runs in has a CPU quota (a container or JupyterHub limit, e.g. 1 CPU): a
    pod's requests are a promise of that much CPU, so only what the quota grants can be promised.
    Memory: the machine's total, or the memory limit of this process's cgroup if lower.
    Pods: kubelet's default maximum, 110.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    cpu, cpu_source = float(cores), f"{cores} cores this process may use"
    quota = _cgroup_cpu_quota()
    if quota is not None and quota[0] < cpu:
        cpu, cpu_source = quota[0], f"the CPU quota of cgroup {quota[1]}"
    memory, memory_source = psutil.virtual_memory().total, "the machine's total"
    limit = _cgroup_memory_limit()
    if limit is not None and limit[0] < memory:
        memory, memory_source = limit[0], f"the memory limit of cgroup {limit[1]}"
    return Allocatable(round(cpu, 3), int(memory), MAX_PODS, cpu_source, memory_source)


# -- this process's cgroups (Linux; v1 and v2, nested limits included) ------------------------------
# Read by hand: no maintained library reads a fractional, nested CPU quota (loky rounds up to
# whole CPUs and reads only the top group).

def _cgroup_cpu_quota() -> tuple[float, str] | None:
    """The tightest CPU quota (in cores) on this process's cgroup and its ancestors, and where."""
    found = []
    for directory in _own_groups("cpu"):
        quota, period = _read(directory / "cpu.cfs_quota_us"), _read(directory / "cpu.cfs_period_us")
        if quota and period and quota.lstrip("-").isdigit() and int(quota) > 0 and int(period) > 0:
            found.append((int(quota) / int(period), str(directory)))
    for directory in _own_groups("unified"):
        words = (_read(directory / "cpu.max") or "max").split()
        if words[0] != "max" and len(words) == 2 and int(words[1]) > 0:
            found.append((int(words[0]) / int(words[1]), str(directory)))
    return min(found) if found else None


def _cgroup_memory_limit() -> tuple[int, str] | None:
    """The tightest memory limit (bytes) on this process's cgroup and its ancestors, and where."""
    found = []
    for directory, name in [(d, "memory.limit_in_bytes") for d in _own_groups("memory")] + \
                           [(d, "memory.max") for d in _own_groups("unified")]:
        value = _read(directory / name)
        if value and value.isdigit() and int(value) < _NO_LIMIT:
            found.append((int(value), str(directory)))
    return min(found) if found else None


def _own_groups(controller: str) -> list[Path]:
    """The directories of this process's group for `controller` ('unified' for v2) and its
    ancestors up to the mount point, from /proc/self/cgroup and /proc/self/mountinfo."""
    if sys.platform != "linux":
        return []
    try:
        mountinfo = Path("/proc/self/mountinfo").read_text().splitlines()
        membership = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return []
    own = None
    for line in membership:
        _, controllers, path = line.split(":", 2)
        if controller in (controllers.split(",") if controllers else ["unified"]):
            own = path
    mount = None
    for line in mountinfo:
        left, _, right = line.partition(" - ")
        fields, fstype = left.split(), right.split()
        if fstype and (fstype[0] == "cgroup2" if controller == "unified"
                       else fstype[0] == "cgroup" and controller in fstype[-1].split(",")):
            mount = (Path(fields[4]), fields[3])
    if own is None or mount is None:
        return []
    point, root = mount
    relative = os.path.relpath(own, root) if own.startswith(root) else own.lstrip("/")
    leaf = point / relative if relative not in (".", "") else point
    groups = [leaf, *leaf.parents]
    return [g for g in groups[: groups.index(point) + 1] if g.is_dir()] if point in groups else [point]


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None
