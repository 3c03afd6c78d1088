"""The second rung: a transient scope of the user's own systemd manager, with the pod's limits as
the scope's properties (CPUQuota, MemoryMax), where cgroup v2 holds the cpu controller and the
user's manager answers (a desktop login, or a server with lingering on).

An unprivileged user may not move a running process into a group: that needs write access to the
group both sides share, which for an SSH or JupyterHub session belongs to root. So the pod is
*started* in its scope: `command()` wraps its argv in `systemd-run --user --scope`, which asks the
manager for the scope and then becomes the pod's process (same pid). `add()` then checks what the
kernel did: the process sits in the scope's group, whose cpu.max (and memory.max) read back the
limits. Each start (a restart, a preStop hook) gets a scope of its own, with the same limits; the
pod's CPU is the sum over its scopes, read from their cpu.stat.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from servelab.limits import cgroupfs
from servelab.limits.cgroupfs import Host
from servelab.limits.cpuclock import gone
from servelab.limits.held import Held

START_TIMEOUT_S = 5.0  # for systemd-run to get its scope from the manager and exec the command
_units = itertools.count(1)


def unit_name(name: str) -> str:
    """A scope name systemd accepts, unique in this process: servelab-<our pid>-<name>-<n>.scope."""
    return f"servelab-{os.getpid()}-{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}-{next(_units)}.scope"


def scope_command(systemd_run: str, unit: str, cpu_limit: float | None, memory_limit: int | None,
                  argv: list[str], period_s: float = cgroupfs.PERIOD_S) -> list[str]:
    """`argv` started in transient scope `unit` of the user's manager, with the limits as its properties."""
    properties = []
    if cpu_limit is not None:
        properties += ["-p", f"CPUQuota={cpu_limit * 100:g}%"]
        if period_s != cgroupfs.PERIOD_S:
            properties += ["-p", f"CPUQuotaPeriodSec={period_s * 1000:g}ms"]
    if memory_limit is not None:
        properties += ["-p", f"MemoryMax={memory_limit}"]
    return [systemd_run, "--user", "--scope", "--quiet", "--collect", f"--unit={unit}", *properties, "--", *argv]


def unavailable(host: Host = Host()) -> str:
    """Why this machine has no user-scope rung, before asking the manager ("" when it may have one)."""
    if not host.platform.startswith("linux"):
        return f"systemd scopes exist only on Linux (this is {host.platform})"
    try:
        mounts, own = host.mounts(), host.cgroup_paths()
    except OSError as error:
        return f"cannot read /proc cgroup info: {error}"
    if "unified" not in mounts or "unified" not in own:
        return "cgroup v2 is not mounted"
    listed = mounts["unified"][0] / "cgroup.controllers"
    if "cpu" not in (listed.read_text().split() if listed.exists() else []):
        return "cgroup v2 is mounted without the cpu controller (it is bound to cgroup v1: a hybrid setup)"
    if shutil.which("systemd-run") is None:
        return "systemd-run is not installed"
    return ""


class ScopeHeld(Held):
    """One pod's limits as the properties of the transient scope(s) it was started in."""

    rung = "user-scope"

    def __init__(self, host: Host, name: str, cpu_limit: float | None, memory_limit: int | None,
                 period_s: float = cgroupfs.PERIOD_S):
        super().__init__()
        self.host, self.name = host, name
        self.cpu_limit, self.memory_limit, self.period_s = cpu_limit, memory_limit, period_s
        self._systemd_run = shutil.which("systemd-run") or "systemd-run"
        self._pending: set[str] = set()  # scopes of processes started by command() and not added yet
        self._scopes: dict[Path, float] = {}  # scope group -> its CPU seconds when last read

    def command(self, argv: list[str]) -> list[str]:
        unit = unit_name(self.name)
        self._pending.add(unit)
        return scope_command(self._systemd_run, unit, self.cpu_limit, self.memory_limit, argv, self.period_s)

    def _add(self, pid: int) -> str:
        if not self._pending:
            return f"process {pid} was not started with this pod's command(): it cannot join a scope afterwards"
        group = None
        deadline = time.monotonic() + START_TIMEOUT_S
        while group is None and time.monotonic() < deadline:
            group = self._scope_group(pid)
            if group is None:
                if gone(pid):
                    return f"process {pid} exited before starting in its scope (systemd-run failed; see its output)"
                time.sleep(0.01)
        if group is None:
            return f"process {pid} was not in a scope of {', '.join(sorted(self._pending))} after {START_TIMEOUT_S:g} s"
        self._pending.discard(group.name)
        self._scopes[group] = 0.0
        wanted = {"cpu.max": cgroupfs.cpu_max(self.cpu_limit, self.period_s)}
        if self.memory_limit is not None:
            wanted["memory.max"] = str(self.memory_limit)
        return next(filter(None, (cgroupfs.read_back(group / f, v) for f, v in wanted.items())), "")

    def _scope_group(self, pid: int) -> Path | None:
        """The group of the scope `pid` runs in, once it runs in one this pod's command() named."""
        try:
            path = self.host.cgroup_paths(pid).get("unified", "")
            mount, root = self.host.mounts()["unified"]
        except (OSError, KeyError):
            return None
        return cgroupfs.group_dir(mount, root, path) if path.rstrip("/").rpartition("/")[2] in self._pending else None

    def _rung_cpu_s(self) -> float | None:
        for group, last in self._scopes.items():
            now = cgroupfs.usage_v2_s(group)
            self._scopes[group] = last if now is None else max(last, now)
        return sum(self._scopes.values())


def probe(host: Host = Host()) -> str:
    """Start a short-lived process in a scope limited to 0.5 CPU and 64 MiB, check the kernel holds it
    there with those limits; "" when it does, else why not (with what systemd-run said)."""
    held = ScopeHeld(host, "probe", 0.5, 64 * 2**20)
    process = subprocess.Popen(held.command(["sleep", "30"]), stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        problem = held.add(process.pid)
    finally:
        process.kill()
        said = process.communicate()[1].strip()
    if not problem:
        return ""
    if "cpu.max: No such file" in problem:
        said = "the cpu controller is not delegated to the user's manager (see Delegate= of user@.service)"
    return f"the user's systemd manager did not give a limited scope: {problem}" + (f" ({said})" if said else "")
