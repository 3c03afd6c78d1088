"""The watchdog: a process that SIGKILLs a cluster's pods when their owner is gone, however it went.

Children die with their owner already (servelab.core.processes: their own process group, and
PR_SET_PDEATHSIG on Linux), but the kernel's signal follows the thread that started a child, and
macOS has none. So a watchdog process (`python -m servelab.backends.local.watchdog`) holds a pipe
from the owner and, when the pipe closes for any reason, SIGKILLs every process group it was told
about.
"""

from __future__ import annotations

import subprocess
import sys

from servelab.core import processes


class Watchdog:
    """The owner's half: a child that SIGKILLs registered process groups when the owner is gone."""

    def __init__(self) -> None:
        self.process = processes.start([sys.executable, "-m", "servelab.backends.local.watchdog"],
                                       stdin=subprocess.PIPE)

    def watch(self, pid: int) -> None:
        self._send(f"+{pid}")

    def forget(self, pid: int) -> None:
        self._send(f"-{pid}")

    def _send(self, line: str) -> None:
        try:
            self.process.stdin.write(f"{line}\n".encode())
            self.process.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass

    def close(self) -> None:
        """Closing the pipe is the signal: the watchdog kills what is left and exits."""
        try:
            self.process.stdin.close()
        except BrokenPipeError:
            pass
        self.process.wait(timeout=10)


def _watchdog_main() -> int:
    groups: set[int] = set()
    for line in sys.stdin:
        pid = int(line[1:])
        (groups.add if line[0] == "+" else groups.discard)(pid)
    for pid in groups:
        processes.kill_group(pid)
    return 0


if __name__ == "__main__":
    sys.exit(_watchdog_main())
