"""The owner's side of the userspace rung: one enforcer process (servelab.limits.enforcer) per
ladder, started on first use, and the pods it holds.

A thread watches the enforcer: should it die while trees are held (killed, crashed), the owner
continues every held tree itself and each hold reports the problem, so no pod is left stopped.
"""

from __future__ import annotations

import itertools
import select
import signal
import subprocess
import sys
import threading

from servelab.core import processes
from servelab.limits.cgroupfs import PERIOD_S
from servelab.limits.cpuclock import TreeClock, gone
from servelab.limits.held import Held

ANSWER_TIMEOUT_S = 5.0
_ids = itertools.count(1)


class Enforcer:
    """A running enforcer process and a lock-step line protocol to it."""

    def __init__(self) -> None:
        # Not killed with the owner: at the end of its stdin it continues every tree it stopped.
        self.process = processes.start(
            [sys.executable, "-m", "servelab.limits.enforcer"], outlive_parent=True, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, bufsize=1,
        )
        self.failed = ""  # why the enforcer is gone, once it is
        self.held: dict[str, TreeClock] = {}  # the owner's copy of what is held, to continue it if the enforcer dies
        self._lock = threading.Lock()
        self._closing = False
        threading.Thread(target=self._watch, name="servelab-enforcer-watch", daemon=True).start()

    def call(self, line: str) -> str:
        """Send one command and return the enforcer's answer; 'error ...' when it cannot answer.

        An enforcer that does not answer within ANSWER_TIMEOUT_S (stopped, stuck) is killed, so the
        owner continues what it held instead of waiting on it for ever."""
        with self._lock:
            if self.failed:
                return f"error {self.failed}"
            try:
                self.process.stdin.write(line + "\n")
                if select.select([self.process.stdout], [], [], ANSWER_TIMEOUT_S)[0]:
                    return self.process.stdout.readline().strip() or f"error {self._gone()}"
                self.failed = f"the userspace CPU enforcer (pid {self.process.pid}) did not answer within " \
                              f"{ANSWER_TIMEOUT_S:g} s and was stopped: limits no longer held"
                self.process.kill()
            except (BrokenPipeError, ValueError, OSError):
                pass
            return f"error {self.failed or self._gone()}"

    def _gone(self) -> str:
        code = self.process.wait()
        return f"the userspace CPU enforcer (pid {self.process.pid}) exited with code {code}: limits no longer held"

    def _watch(self) -> None:
        self.process.wait()
        if self._closing:
            return
        self.failed = self.failed or self._gone()
        for clock in list(self.held.values()):
            clock.read_ns()
            _continue(clock)

    def close(self) -> None:
        """Closing its stdin is the signal: the enforcer continues what it holds and exits."""
        self._closing = True
        try:
            self.process.stdin.close()
        except OSError:
            pass
        processes.wait_or_kill(self.process, 10)
        for clock in self.held.values():
            _continue(clock)


def _continue(clock: TreeClock) -> None:
    from servelab.limits.enforcer import signal_tree

    signal_tree(clock, signal.SIGCONT)


class UserspaceHeld(Held):
    """One pod held by the enforcer; its CPU is the number the enforcer acts on."""

    rung = "userspace"

    def __init__(self, enforcer: Enforcer, name: str, cpu_limit: float | None, period_s: float = PERIOD_S):
        """Held as CFS holds a cgroup: `cpu_limit` x `period_s` of CPU per period, spent in a burst if need be."""
        super().__init__()
        self.enforcer, self.key = enforcer, f"{next(_ids)}-{name}"
        answer = enforcer.call(f"hold {self.key} {'-' if cpu_limit is None else cpu_limit} {period_s}")
        self._problem = "" if answer == "ok" else answer.removeprefix("error ")
        if not self._problem:
            enforcer.held[self.key] = self._clock  # the owner's own list of the tree, to continue it if need be

    @property
    def problem(self) -> str:
        """Why this tree is not held ("" while it is): a failed hold or add, or the enforcer gone."""
        return self._problem or self.enforcer.failed

    def _add(self, pid: int) -> str:
        answer = self.enforcer.call(f"add {self.key} {pid}")
        if answer == "ok" or (answer.startswith("error cannot signal") and gone(pid)):
            return ""  # held, or already over (a short preStop hook): nothing left to hold
        return answer.removeprefix("error ")

    def _rung_cpu_s(self) -> float | None:
        answer = self.enforcer.call(f"usage {self.key}")
        return int(answer) / 1e9 if answer.isdigit() else None

    def remove(self) -> None:
        self.enforcer.call(f"release {self.key}")
        self.enforcer.held.pop(self.key, None)
