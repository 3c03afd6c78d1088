"""Fault injection: a server that stops answering predictions now and then.

`Stall(every_s, for_s)`: starting `every_s` after the server starts, and again every `every_s`,
predictions stop for `for_s` seconds (health and metrics keep answering, like a process stuck
in a long garbage collection or a noisy neighbour). A load generator that waits for each
answer before sending the next one hides most of these stalls; an open-loop one shows them.
This is how the labs demonstrate coordinated omission.
"""

from __future__ import annotations

import time


class Stall:
    def __init__(self, every_s: float, for_s: float, start: float | None = None):
        if not 0 < for_s < every_s:
            raise ValueError(f"need 0 < stall-for < stall-every; got stall-for={for_s}, stall-every={every_s}")
        self.every_s = every_s
        self.for_s = for_s
        self.start = time.monotonic() if start is None else start

    def remaining(self, now: float | None = None) -> float:
        """Seconds until the current stall ends (0 when predictions are flowing)."""
        elapsed = (time.monotonic() if now is None else now) - self.start
        if elapsed < self.every_s:
            return 0.0
        into = elapsed % self.every_s
        return self.for_s - into if into < self.for_s else 0.0
