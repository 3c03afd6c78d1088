"""The first rung: a cgroup (v1 or v2) this process may write, as root or in a delegated group.

Each pod gets its own group below the group this Python process already lives in (so we nest
inside whatever a container runtime or JupyterHub gave us, and never escape it):
`<controller mount>/<our own path>/servelab-<our pid>/<pod name>`. A limit counts as enforced only
when its files were written and read back equal, and the pod's process is seen inside the group.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from servelab.limits import cgroupfs
from servelab.limits.cgroupfs import PERIOD_S, Host
from servelab.limits.cpuclock import descendants, gone
from servelab.limits.held import Held

V1_CONTROLLERS = ("cpu", "cpuacct", "memory")


@dataclass
class Support:
    """A writable hierarchy: `version` 1 or 2 and our parent group per controller; or `reason` why none."""

    version: int | None
    dirs: dict[str, Path]  # controller ("cpu", "cpuacct", "memory", or "unified") -> our parent group
    reason: str = ""
    host: Host = Host()


def detect(host: Host = Host()) -> Support:
    """Find a cgroup hierarchy we may write: v1 cpu+cpuacct+memory, else v2 with cpu and memory."""
    if not host.platform.startswith("linux"):
        return Support(None, {}, f"cgroups exist only on Linux (this is {host.platform})", host)
    try:
        groups = host.own_groups()
    except OSError as error:
        return Support(None, {}, f"cannot read /proc cgroup info: {error}", host)
    tag = f"servelab-{os.getpid()}"
    if all(c in groups for c in V1_CONTROLLERS):
        dirs = {c: groups[c] / tag for c in V1_CONTROLLERS}
        problem = cgroupfs.make_dirs(dirs.values())
        return Support(None, {}, problem, host) if problem else Support(1, dirs, "", host)
    if "unified" in groups:
        base = groups["unified"]
        listed = base / "cgroup.controllers"
        have = set(listed.read_text().split()) if listed.exists() else set()
        if not {"cpu", "memory"} <= have:
            return Support(None, {}, f"cgroup v2 group {base} does not delegate cpu and memory "
                                     f"(has: {' '.join(sorted(have)) or 'none'})", host)
        parent = base / tag
        problem = cgroupfs.make_dirs([parent]) or cgroupfs.write(parent / "cgroup.subtree_control", "+cpu +memory")
        return Support(None, {}, problem, host) if problem else Support(2, {"unified": parent}, "", host)
    return Support(None, {}, "no cgroup v1 cpu/cpuacct/memory or v2 hierarchy is mounted", host)


class CgroupHeld(Held):
    """One pod's cgroup: limits written at creation, processes added after spawn, usage read."""

    def __init__(self, support: Support, name: str, cpu_limit: float | None, memory_limit: int | None,
                 period_s: float = PERIOD_S):
        super().__init__()
        self.support, self.rung = support, f"cgroup-v{support.version}"
        self.dirs = {c: d / name for c, d in support.dirs.items()}
        self._problem = cgroupfs.make_dirs(self.dirs.values()) or self._write_limits(cpu_limit, memory_limit, period_s)

    def _write_limits(self, cpu_limit: float | None, memory_limit: int | None, period_s: float) -> str:
        period_us = round(period_s * 1e6)
        if self.support.version == 1:
            quota = str(int(cpu_limit * period_us)) if cpu_limit else "-1"
            wanted = {self.dirs["cpu"] / "cpu.cfs_period_us": str(period_us), self.dirs["cpu"] / "cpu.cfs_quota_us": quota}
            if memory_limit:
                wanted[self.dirs["memory"] / "memory.limit_in_bytes"] = str(memory_limit)
        else:
            wanted = {self.dirs["unified"] / "cpu.max": cgroupfs.cpu_max(cpu_limit, period_s)}
            if memory_limit:
                wanted[self.dirs["unified"] / "memory.max"] = str(memory_limit)
        return next(filter(None, (cgroupfs.written(path, value) for path, value in wanted.items())), "")

    def _add(self, pid: int) -> str:
        for d in self.dirs.values():
            problem = cgroupfs.write(d / "cgroup.procs", str(pid))
            if problem:
                return "" if gone(pid) else problem  # a short preStop hook may be over already
        # The kernel moves only the pid written; children it forked before this call would stay
        # outside the group and unlimited, so its tree so far is moved with it.
        for child in sorted(descendants(pid)):
            for d in self.dirs.values():
                problem = cgroupfs.write(d / "cgroup.procs", str(child))
                if problem and not gone(child):
                    return f"child {child} of process {pid}: {problem}"
        try:
            paths = self.support.host.cgroup_paths(pid)
        except OSError:
            return ""  # already exited: nothing left to limit
        outside = [c for c, d in self.dirs.items() if c not in paths or not str(d).endswith(paths[c])]
        return f"process {pid} is not in its {'/'.join(outside)} cgroup after writing cgroup.procs" if outside else ""

    def _rung_cpu_s(self) -> float | None:
        if self.support.version == 2:
            return cgroupfs.usage_v2_s(self.dirs["unified"])
        try:
            return int((self.dirs["cpuacct"] / "cpuacct.usage").read_text()) / 1e9
        except (OSError, ValueError):
            return None

    def remove(self) -> None:
        for d in self.dirs.values():
            cgroupfs.rmdir_quiet(d)


def remove_parent(support: Support) -> None:
    """Remove our servelab-<pid> groups (pods' groups must be gone already)."""
    for d in support.dirs.values():
        cgroupfs.rmdir_quiet(d)


def remove_stale(host: Host = Host()) -> None:
    """Remove empty servelab-<pid> groups left by processes that died without cleaning up."""
    if not host.platform.startswith("linux"):
        return
    try:
        groups = host.own_groups()
    except OSError:
        return
    for group in groups.values():
        for stale in group.glob("servelab-*"):
            pid = stale.name.removeprefix("servelab-")
            if pid.isdigit() and not (host.proc / pid).exists():
                for child in stale.iterdir():
                    if child.is_dir():
                        cgroupfs.rmdir_quiet(child)
                cgroupfs.rmdir_quiet(stale)
