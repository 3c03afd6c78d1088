"""CPU and memory limits for pod processes with Linux cgroups (v1 or v2), detected, never assumed.

Each pod gets its own group below the group this Python process already lives in (so we nest
inside whatever a container runtime or JupyterHub gave us, and never escape it):
`<controller mount>/<our own path>/servelab-<our pid>/<pod name>`. A limit counts as enforced only
when the files were written, read back equal, and the pod's process is seen inside the group.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

PERIOD_US = 100_000
_warned = False


@dataclass
class Support:
    """What this machine lets us do. `reason` says why limits cannot be enforced, if they cannot."""

    version: int | None  # 1, 2 or None (no usable cgroups)
    dirs: dict[str, Path]  # controller ("cpu", "cpuacct", "memory", or "unified") -> our parent group
    reason: str = ""

    @property
    def usable(self) -> bool:
        return self.version is not None


def _mounts() -> dict[str, tuple[Path, str]]:
    """cgroup controller (or 'unified') -> (mount point, mount root) from /proc/self/mountinfo."""
    found: dict[str, tuple[Path, str]] = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields, fstype = left.split(), right.split()
        if not fstype:
            continue
        if fstype[0] == "cgroup2":
            found.setdefault("unified", (Path(fields[4]), fields[3]))
        elif fstype[0] == "cgroup":
            for option in fstype[-1].split(","):
                if option in ("cpu", "cpuacct", "memory"):
                    found[option] = (Path(fields[4]), fields[3])
    return found


def _own_paths() -> dict[str, str]:
    """controller (or 'unified') -> this process's group path, from /proc/self/cgroup."""
    paths = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else ["unified"]:
            paths[name] = path
    return paths


def _group_dir(mount: Path, root: str, own: str) -> Path:
    relative = os.path.relpath(own, root) if own.startswith(root) else own
    return (mount / relative.lstrip("./")) if relative not in (".", "/") else mount


def detect() -> Support:
    """Find a cgroup hierarchy we may write: v1 cpu+cpuacct+memory, else v2 with cpu and memory."""
    if sys.platform != "linux":
        return Support(None, {}, f"cgroups exist only on Linux (this is {sys.platform})")
    try:
        mounts, own = _mounts(), _own_paths()
    except OSError as error:
        return Support(None, {}, f"cannot read /proc cgroup info: {error}")
    tag = f"servelab-{os.getpid()}"
    if all(c in mounts and c in own for c in ("cpu", "cpuacct", "memory")):
        dirs = {c: _group_dir(*mounts[c], own[c]) / tag for c in ("cpu", "cpuacct", "memory")}
        problem = _make_dirs(dirs.values())
        return Support(None, {}, problem) if problem else Support(1, dirs)
    if "unified" in mounts and "unified" in own:
        base = _group_dir(*mounts["unified"], own["unified"])
        have = set((base / "cgroup.controllers").read_text().split()) if (base / "cgroup.controllers").exists() else set()
        if not {"cpu", "memory"} <= have:
            return Support(None, {}, f"cgroup v2 group {base} does not delegate cpu and memory (has: {sorted(have) or 'none'})")
        parent = base / tag
        problem = _make_dirs([parent]) or _write(parent / "cgroup.subtree_control", "+cpu +memory")
        return Support(None, {}, problem) if problem else Support(2, {"unified": parent})
    return Support(None, {}, "no cgroup v1 cpu/cpuacct/memory or v2 hierarchy is mounted")


def _make_dirs(dirs) -> str:
    for d in dirs:
        try:
            d.mkdir(exist_ok=True)
        except OSError as error:
            return f"cannot create cgroup {d}: {error.strerror} (needs root or a delegated cgroup)"
    return ""


def _write(path: Path, value: str) -> str:
    try:
        path.write_text(value)
    except OSError as error:
        return f"cannot write {path}: {error.strerror}"
    return ""


def warn_once(reason: str) -> None:
    """Say once per process, plainly, that limits are not enforced and where that is recorded."""
    global _warned
    if not _warned:
        _warned = True
        print(
            f"servelab: CPU/memory limits are NOT enforced on this machine ({reason}). Pods may use "
            "more CPU than resources.limits; every run's metadata records limits_enforced=False.",
            file=sys.stderr,
        )


class PodGroup:
    """One pod's cgroup: limits written at creation, processes added after spawn, usage read."""

    def __init__(self, support: Support, pod: str, cpu_limit: float | None, memory_limit: int | None):
        self.support = support
        self.dirs = {c: d / pod for c, d in support.dirs.items()}
        self.problem = _make_dirs(self.dirs.values())
        if not self.problem:
            self.problem = self._write_limits(cpu_limit, memory_limit)

    def _write_limits(self, cpu_limit: float | None, memory_limit: int | None) -> str:
        quota = int(cpu_limit * PERIOD_US) if cpu_limit else -1
        if self.support.version == 1:
            wanted = {
                self.dirs["cpu"] / "cpu.cfs_period_us": str(PERIOD_US),
                self.dirs["cpu"] / "cpu.cfs_quota_us": str(quota),
            }
            if memory_limit:
                wanted[self.dirs["memory"] / "memory.limit_in_bytes"] = str(memory_limit)
        else:
            wanted = {self.dirs["unified"] / "cpu.max": f"{'max' if quota < 0 else quota} {PERIOD_US}"}
            if memory_limit:
                wanted[self.dirs["unified"] / "memory.max"] = str(memory_limit)
        for path, value in wanted.items():
            problem = _write(path, value)
            if problem:
                return problem
            read = path.read_text().split()
            if read != value.split() and not (path.name.startswith("memory") and abs(int(read[0]) - int(value)) < 8192):
                return f"{path} reads back {' '.join(read)!r}, not {value!r}"
        return ""

    def add(self, pid: int) -> str:
        """Move `pid` into every controller's group; returns a problem, or "" when it is inside."""
        if self.problem:
            return self.problem
        for d in self.dirs.values():
            problem = _write(d / "cgroup.procs", str(pid))
            if problem:
                return problem
        mine = {str(d) for d in self.dirs.values()}
        try:
            lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
        except OSError:
            return ""  # already exited: nothing left to limit
        seen = sum(1 for line in lines if any(m.endswith(line.split(":", 2)[2]) for m in mine))
        return "" if seen >= len(mine) else f"process {pid} is not in its cgroup after writing cgroup.procs"

    def usage_ns(self) -> int | None:
        """Total CPU time of everything ever run in this group, in nanoseconds."""
        try:
            if self.support.version == 1:
                return int((self.dirs["cpuacct"] / "cpuacct.usage").read_text())
            for line in (self.dirs["unified"] / "cpu.stat").read_text().splitlines():
                key, value = line.split()
                if key == "usage_usec":
                    return int(value) * 1000
        except (OSError, ValueError, KeyError):
            return None
        return None

    def remove(self) -> None:
        for d in self.dirs.values():
            _rmdir_quiet(d)


def remove_parent(support: Support) -> None:
    """Remove our servelab-<pid> groups (pods' groups must be gone already)."""
    for d in support.dirs.values():
        _rmdir_quiet(d)


def remove_stale() -> None:
    """Remove empty servelab-<pid> groups left by processes that died without cleaning up."""
    if sys.platform != "linux":
        return
    try:
        mounts, own = _mounts(), _own_paths()
    except OSError:
        return
    for controller, (mount, root) in mounts.items():
        if controller not in own:
            continue
        for stale in _group_dir(mount, root, own[controller]).glob("servelab-*"):
            pid = stale.name.removeprefix("servelab-")
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                for child in stale.iterdir():
                    if child.is_dir():
                        _rmdir_quiet(child)
                _rmdir_quiet(stale)


def _rmdir_quiet(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass
