"""The userspace CPU-limit enforcer: a process that holds process trees to a CPU limit with
SIGSTOP/SIGCONT, as the `cpulimit` tool does, where no cgroup can be written (no root, macOS).

Each held tree has a token bucket of CPU seconds, refilled at `limit` cores and holding at most one
period's quota (limit x period, as CFS grants per period). The bucket is debited with the CPU the
tree really used (its CPU clocks, servelab.limits.cpuclock); when it is empty the tree's process
group is stopped, and continued once the bucket has refilled to (1 - limit) of a period's quota. What the tree used past an empty
bucket before the stop landed stays as debt, so over time the tree gets exactly `limit` cores.
Checks come every few ms while a tree runs (sooner as its bucket runs low), so a burst overshoots
by at most a check interval times the cores it runs on.

The owner talks over stdin/stdout, one line each way per command:
    hold <id> <limit cores or -> <period s>   -> ok
    add <id> <pid>                             -> ok | error <why>
    usage <id>                                 -> <CPU ns of the tree since held>
    release <id>                               -> ok (continued and forgotten)
End of stdin (the owner closed it or died), SIGTERM, SIGINT or SIGHUP: every tree is continued,
then the enforcer exits, so it never leaves a process stopped.

    python -m servelab.limits.enforcer
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time
from types import FrameType

from servelab.core import processes
from servelab.limits.cpuclock import REFRESH_S, TreeClock

MIN_CHECK_S = 0.002  # how often, at most, a running tree's CPU is read
CORES = os.cpu_count() or 1  # the fastest a tree can spend its bucket


def signal_tree(clock: TreeClock, sig: int) -> None:
    """Send `sig` to every process of the tree: whole groups a root leads, other members one by one.

    A group is signalled only when a held root leads it, so a process that was not started in its
    own session never takes its parent's group (a notebook, a test runner) with it.
    """
    groups = clock.groups()
    for group in groups:
        processes.kill_group(group, sig)
    for pid in set(clock.members()) | clock.roots:
        try:
            if os.getpgid(pid) not in groups:
                os.kill(pid, sig)
        except OSError:
            pass


class Bucket:
    """One held tree: its token bucket and whether it is stopped now."""

    def __init__(self, limit: float | None, period_s: float):
        self.limit, self.period_s = limit, period_s
        self.clock = TreeClock()
        self.capacity = (limit or 0.0) * period_s
        # Continue a stopped tree once the bucket holds this much: then it runs limit x period and
        # stops (1 - limit) x period, as CFS throttles one busy thread (a full bucket would stop it a
        # whole period, twice CFS's stall at half a core).
        self.resume_at = self.capacity * max(0.0, 1.0 - (limit or 0.0))
        self.tokens = self.capacity
        self.stopped = False
        self.used_ns = 0
        self._at = time.monotonic()

    def add(self, pid: int) -> str:
        try:
            os.kill(pid, 0)
        except OSError as error:
            return f"cannot signal process {pid}: {error.strerror}"
        self.clock.add(pid)
        self.step()
        if self.stopped:
            signal_tree(self.clock, signal.SIGSTOP)
        return ""

    def step(self) -> float:
        """Debit what the tree used, refill for the time passed, stop or continue it; seconds to the next check."""
        now, used = time.monotonic(), self.clock.read_ns()
        spent, self.used_ns = (used - self.used_ns) / 1e9, used
        if self.limit is None:
            self._at = now
            return REFRESH_S
        self.tokens = min(self.capacity, self.tokens + self.limit * (now - self._at) - spent)
        self._at = now
        if not self.stopped and self.tokens <= 0:
            signal_tree(self.clock, signal.SIGSTOP)
            self.stopped = True
        elif self.stopped and self.tokens >= self.resume_at:
            signal_tree(self.clock, signal.SIGCONT)
            self.stopped = False
        if self.stopped:
            return max(MIN_CHECK_S, (self.resume_at - self.tokens) / self.limit)
        return min(REFRESH_S, max(MIN_CHECK_S, self.tokens / CORES))

    def release(self) -> None:
        signal_tree(self.clock, signal.SIGCONT)
        self.stopped = False


class Enforcer:
    """The command loop: answers the owner between checks of the held trees."""

    def __init__(self) -> None:
        self.buckets: dict[str, Bucket] = {}

    def command(self, line: str) -> str:
        verb, key, *rest = line.split()
        if verb == "hold":
            limit, period = rest
            self.buckets[key] = Bucket(None if limit == "-" else float(limit), float(period))
            return "ok"
        bucket = self.buckets.get(key)
        if bucket is None:
            return f"error nothing held as {key!r}"
        if verb == "add":
            problem = bucket.add(int(rest[0]))
            return f"error {problem}" if problem else "ok"
        if verb == "usage":
            bucket.step()
            return str(bucket.used_ns)
        if verb == "release":
            self.buckets.pop(key).release()
            return "ok"
        return f"error unknown command {verb!r}"

    def run(self, stdin: int, stdout: int) -> None:
        pending = b""
        while True:
            wait = min((b.step() for b in self.buckets.values()), default=REFRESH_S)
            if not select.select([stdin], [], [], wait)[0]:
                continue
            chunk = os.read(stdin, 65536)
            if not chunk:
                return
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                os.write(stdout, (self.command(line.decode()) + "\n").encode())

    def release_all(self) -> None:
        for bucket in self.buckets.values():
            bucket.release()


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main() -> int:
    enforcer = Enforcer()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _exit_on_signal)
    try:
        enforcer.run(sys.stdin.fileno(), sys.stdout.fileno())
    finally:
        enforcer.release_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
