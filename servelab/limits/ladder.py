"""Which rung holds a pod's limits on this machine: tried best first, detected, never assumed.

1. cgroup: a cgroup (v1 or v2) this process may write (root, or a delegated group): the kernel
   enforces CPU and memory exactly as a kubelet would.
2. user-scope: a transient scope of the user's own systemd manager (cgroup v2): the kernel again,
   with no root.
3. userspace: an enforcer process that stops and continues the pod's processes so they average
   their CPU limit (Linux and macOS, any user); it cannot hold memory.
`SERVELAB_LIMITS=cgroup|user-scope|userspace|none` (or `detect(prefer=...)`) asks for one rung:
then only that one is tried, and when it is not available nothing holds the pods and every run
says why.
"""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import dataclass, field

from servelab.limits import cgroup, cpuclock, user_scope, userspace
from servelab.limits.cgroupfs import PERIOD_S, Host
from servelab.limits.held import Held

RUNGS = ("cgroup", "user-scope", "userspace")
CHOICES = (*RUNGS, "none")
MEANING = {
    "cgroup-v1": "the kernel holds each pod to its CPU and memory limits (cgroup v1 CFS quota), as a kubelet does",
    "cgroup-v2": "the kernel holds each pod to its CPU and memory limits (cgroup v2 cpu.max), as a kubelet does",
    "user-scope": "the kernel holds each pod to its limits in a scope of your own systemd manager, no root needed",
    "userspace": ("a servelab process stops and continues each pod so it averages its CPU limit per 100 ms, as "
                  "the kernel's quota does; memory limits are not held (only a cgroup can cap the memory a process "
                  "uses: RLIMIT_AS caps address space, not memory in use, and would fail allocations instead)"),
}


@dataclass
class Ladder:
    """The rungs this machine has, best first; `tried` says why each missing one is.

    Below the best available rung only the userspace one is checked (it is cheap, and takes a pod a
    better rung refuses); the user-scope rung is probed only when no cgroup can be written.
    """

    available: list[str]
    tried: dict[str, str] = field(default_factory=dict)  # rung -> why it is not available
    forced: str | None = None
    host: Host = Host()
    _support: cgroup.Support | None = None
    _enforcer: userspace.Enforcer | None = None

    @property
    def rung(self) -> str | None:
        """The rung pods get ('cgroup-v1', 'cgroup-v2', 'user-scope', 'userspace'), or None."""
        if not self.available:
            return None
        first = self.available[0]
        return f"cgroup-v{self._support.version}" if first == "cgroup" else first

    @property
    def reason(self) -> str:
        """Why no rung holds limits here ("" when one does)."""
        if self.available:
            return ""
        if self.forced == "none":
            return "SERVELAB_LIMITS=none: no rung was tried"
        if self.forced:
            return f"SERVELAB_LIMITS={self.forced} asked for the {self.forced} rung, which is not available here: " \
                   f"{self.tried[self.forced]}"
        return "; ".join(f"{rung}: {why}" for rung, why in self.tried.items())

    @property
    def enforcer_pid(self) -> int | None:
        """The userspace enforcer's pid while one runs (to see what holding costs), else None."""
        return self._enforcer.process.pid if self._enforcer is not None else None

    def note(self, rung: str | None = None) -> str:
        """What holding limits on `rung` (default: this ladder's) means, and why better rungs were passed."""
        rung = rung or self.rung
        if rung is None:
            return f"CPU/memory limits are NOT enforced ({self.reason})"
        better = RUNGS[:RUNGS.index(rung.partition("-v")[0])]
        passed = "; ".join(f"{r} not available: {why}" for r, why in self.tried.items() if r in better)
        return MEANING[rung] + (f" ({passed})" if passed else "")

    def summary(self, held: dict[str, Held]) -> tuple[str | bool, str]:
        """(limits_enforced, limits_note) for a run whose pods were held as `held` (pod name -> Held).

        limits_enforced is the rung every pod was held by, rungs joined by '+' when pods were held
        by different ones, or False when any pod was not held (the note says which and why).
        """
        if not held:
            return self.rung or False, self.note()
        unheld = {name: h.problem for name, h in held.items() if not h.held}
        if unheld:
            name, problem = next(iter(unheld.items()))
            return False, (f"CPU/memory limits NOT enforced for {len(unheld)} of {len(held)} pods "
                           f"({name}: {problem})")
        rungs = sorted({h.rung for h in held.values()})
        if len(rungs) == 1:
            passed = sorted({p for h in held.values() for p in h.passed})
            return rungs[0], self.note(rungs[0]) + "".join(f"; for a pod, {p}" for p in passed)
        by_pod = ", ".join(f"{name} by {h.rung}" for name, h in held.items())
        return "+".join(rungs), f"pods were held by different rungs: {by_pod}"

    def hold(self, name: str, cpu_limit: float | None, memory_limit: int | None,
             cpu_period_s: float = PERIOD_S) -> Held:
        """Limits for a new pod `name`, from the best rung that takes them (the `Held` says which, or why none).

        `cpu_period_s`: the quota's period (CFS's 100 ms unless asked: the local backend shortens it to emulate a slower machine)."""
        problems = []
        for rung in self.available:
            held = self._hold_on(rung, name, cpu_limit, memory_limit, cpu_period_s)
            if not held.problem:
                held.passed = problems
                return held
            held.remove()
            problems.append(f"{rung}: {held.problem}")
        return Held("; ".join(problems) or self.reason)

    def _hold_on(self, rung: str, name: str, cpu_limit: float | None, memory_limit: int | None,
                 period_s: float) -> Held:
        if rung == "cgroup":
            return cgroup.CgroupHeld(self._support, name, cpu_limit, memory_limit, period_s)
        if rung == "user-scope":
            return user_scope.ScopeHeld(self.host, name, cpu_limit, memory_limit, period_s)
        if self._enforcer is None or self._enforcer.failed:
            self._enforcer = userspace.Enforcer()
        return userspace.UserspaceHeld(self._enforcer, name, cpu_limit, period_s)

    def close(self) -> None:
        """Stop the enforcer (continuing what it held) and remove our cgroup parent, if any."""
        if self._enforcer is not None:
            self._enforcer.close()
            self._enforcer = None
        if self._support is not None:
            cgroup.remove_parent(self._support)


def _userspace_problem() -> str:
    if not hasattr(signal, "SIGSTOP"):
        return f"this system ({sys.platform}) has no SIGSTOP/SIGCONT"
    if cpuclock.process_cpu_ns(os.getpid()) is None:
        return "cannot read a process's CPU time here"
    return ""


def detect(prefer: str | None = None, host: Host = Host()) -> Ladder:
    """The ladder on this machine: every rung tried best first (or only `prefer`, else $SERVELAB_LIMITS)."""
    forced = prefer or os.environ.get("SERVELAB_LIMITS") or None
    if forced is not None and forced not in CHOICES:
        raise ValueError(f"SERVELAB_LIMITS / prefer must be one of {', '.join(CHOICES)}, not {forced!r}")
    ladder = Ladder([], forced=forced, host=host)
    for rung in RUNGS if forced is None else [r for r in RUNGS if r == forced]:
        if rung == "user-scope" and ladder.available:
            continue  # the kernel holds pods already; the userspace rung stays as the fallback
        if rung == "cgroup":
            cgroup.remove_stale(host)
            ladder._support = cgroup.detect(host)
            problem = ladder._support.reason
        elif rung == "user-scope":
            problem = user_scope.unavailable(host) or user_scope.probe(host)
        else:
            problem = _userspace_problem()
        if problem:
            ladder.tried[rung] = problem
        else:
            ladder.available.append(rung)
    return ladder


_warned = False


def warn_once(reason: str) -> None:
    """Say once per process, plainly, that limits are not enforced and where that is recorded."""
    global _warned
    if not _warned:
        _warned = True
        print(f"servelab: CPU/memory limits are NOT enforced on this machine ({reason}). Pods may use more CPU "
              "than resources.limits; every run's metadata records limits_enforced=False.", file=sys.stderr)
