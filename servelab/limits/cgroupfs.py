"""Reading and writing Linux cgroup files, for the cgroup and user-scope rungs.

Everything goes through a `Host` (where /proc is), so the rungs' decisions can be checked against
a fake /proc and cgroup tree in a temporary directory; the mount points come from mountinfo.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PERIOD_S = 0.1  # CFS's default period: a limit of c cores is c x 100 ms of CPU per 100 ms
_MEMORY_SLACK = 8192  # the kernel rounds a memory limit to whole pages


@dataclass(frozen=True)
class Host:
    """This machine's process and cgroup information (tests point `proc` at a fake tree)."""

    proc: Path = Path("/proc")
    platform: str = sys.platform

    def mounts(self) -> dict[str, tuple[Path, str]]:
        """cgroup controller (or 'unified') -> (mount point, mount root), from mountinfo."""
        found: dict[str, tuple[Path, str]] = {}
        for line in (self.proc / "self" / "mountinfo").read_text().splitlines():
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

    def cgroup_paths(self, pid: int | str = "self") -> dict[str, str]:
        """controller (or 'unified') -> the group path of process `pid`, from /proc/<pid>/cgroup."""
        paths = {}
        for line in (self.proc / str(pid) / "cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for name in controllers.split(",") if controllers else ["unified"]:
                paths[name] = path
        return paths

    def own_groups(self) -> dict[str, Path]:
        """controller (or 'unified') -> the directory of the group this process lives in."""
        mounts, own = self.mounts(), self.cgroup_paths()
        return {c: group_dir(*mounts[c], own[c]) for c in mounts if c in own}


def group_dir(mount: Path, root: str, path: str) -> Path:
    """The directory of group `path` in a hierarchy mounted at `mount` from `root`."""
    relative = os.path.relpath(path, root) if path.startswith(root) else path
    return (mount / relative.lstrip("./")) if relative not in (".", "/") else mount


def make_dirs(dirs: Iterable[Path]) -> str:
    for d in dirs:
        try:
            d.mkdir(exist_ok=True)
        except OSError as error:
            return f"cannot create cgroup {d}: {error.strerror} (needs root or a delegated cgroup)"
    return ""


def write(path: Path, value: str) -> str:
    try:
        path.write_text(value)
    except OSError as error:
        return f"cannot write {path}: {error.strerror}"
    return ""


def written(path: Path, value: str) -> str:
    """Write `value` and read it back: a limit counts only if the kernel kept it ("" when it did)."""
    return write(path, value) or read_back(path, value)


def read_back(path: Path, value: str) -> str:
    """"" when `path` holds `value` (memory limits within a page), else what it holds instead."""
    try:
        read = path.read_text().split()
    except OSError as error:
        return f"cannot read {path}: {error.strerror}"
    if read == value.split():
        return ""
    if path.name.startswith("memory") and read and read[0].isdigit() and value.isdigit() \
            and abs(int(read[0]) - int(value)) < _MEMORY_SLACK:
        return ""
    return f"{path} reads back {' '.join(read)!r}, not {value!r}"


def cpu_max(cpu_limit: float | None, period_s: float = PERIOD_S) -> str:
    """cgroup v2's cpu.max for a limit of `cpu_limit` cores ('max' for none) over periods of `period_s`."""
    period_us = round(period_s * 1e6)
    return f"{'max' if cpu_limit is None else int(cpu_limit * period_us)} {period_us}"


def usage_v2_s(group: Path) -> float | None:
    """CPU seconds used by everything ever in a cgroup v2 group (cpu.stat's usage_usec)."""
    try:
        for line in (group / "cpu.stat").read_text().splitlines():
            key, value = line.split()
            if key == "usage_usec":
                return int(value) / 1e6
    except (OSError, ValueError):
        return None
    return None


def rmdir_quiet(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass
