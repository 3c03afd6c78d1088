"""The load generator's progress bar: requests done, the rate offered now, ok/s and a live p95.

A schedule whose rate changes is named by the rate it offers at the moment (the step it is in,
or the curve's rate now), not by its mean: a mean of steps of 50 and 400 req/s is a rate the
server never saw. The bar's last line, which a saved notebook keeps, names the whole run's rates.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

import numpy as np

from servelab.core import progress
from servelab.core.result import percentile
from servelab.core.schedules import Constant, Poisson, Random, Schedule, Step
from servelab.load.generator import PROGRESS_EVERY_S

_MAX_STEPS_LISTED = 6  # more steps than this are named by their range, not one by one


def describe(schedule: Schedule, elapsed: float | None = None) -> str:
    """What a bar calls `schedule`: its whole run's rates, or with `elapsed` (seconds into the run) the rate now.

    Constant and Poisson: "poisson 150 req/s" either way. Step: "step 50→400 req/s", and while
    running "step 2/2: 400 req/s". A smooth curve (ramp, diurnal, trace): "diurnal 20–120 req/s",
    and while running "diurnal 20–120 req/s, now 85". `Random(of)` is named "random" and then `of`.
    """
    if isinstance(schedule, Random):
        return f"random {describe(schedule.of, elapsed)}"
    kind = type(schedule).__name__.lower()
    if isinstance(schedule, Constant | Poisson):
        return f"{kind} {schedule.rate:.0f} req/s"
    if isinstance(schedule, Step):
        return _describe_steps(schedule, elapsed)
    low, high = schedule.rate_range()
    whole = f"{kind} {low:.0f}–{high:.0f} req/s"
    return whole if elapsed is None else f"{whole}, now {schedule.rate_at(_inside(schedule, elapsed)):.0f}"


def _describe_steps(schedule: Step, elapsed: float | None) -> str:
    rates = [rate for _, rate in schedule.steps]
    if elapsed is not None:
        i = schedule.step_at(elapsed)
        return f"step {i + 1}/{len(rates)}: {rates[i]:.0f} req/s"
    if len(rates) <= _MAX_STEPS_LISTED:
        return "step " + "→".join(f"{rate:.0f}" for rate in rates) + " req/s"
    low, high = schedule.rate_range()
    return f"step {len(rates)} steps of {low:.0f}–{high:.0f} req/s"


def _inside(schedule: Schedule, elapsed: float) -> float:
    """`elapsed` within [0, duration): the last answers of a run arrive after its schedule has ended."""
    return min(max(elapsed, 0.0), float(np.nextafter(schedule.duration, 0.0)))


class Progress:
    """A tqdm bar (notebook or terminal) fed by shard reports: requests done, ok/s and p95 of the last seconds.

    `label` names the whole run (the last line says it); `live`, given the seconds since the
    start, names where the run is now, and becomes the bar's description as the run goes on.
    """

    def __init__(self, total: int | None, label: str, show: bool, live: Callable[[float], str] | None = None) -> None:
        self.total, self.label, self.live = total, label, live
        self._done: dict[int, int] = {}
        self._ok: dict[int, int] = {}
        self._recent: deque = deque(maxlen=8)  # the last few reports: about the last second or two
        self._ok_at: deque = deque(maxlen=8)  # (seconds since the start, requests ok) at those reports
        self.started = time.monotonic()
        layout = ("{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]" if total
                  else "{desc}: {n_fmt} req [{elapsed}{postfix}]")  # our own rate: tqdm's counts start-up
        self._bar = progress.bar(show, total=total, desc=live(0.0) if live else label, unit="req", leave=True,
                                 bar_format=layout)

    def __enter__(self) -> Progress:
        return self

    def begin(self, start: float) -> float:
        """The run starts at monotonic time `start` (workers were getting ready until now)."""
        self.started = start
        self._bar.reset(total=self.total)
        return start

    def __exit__(self, *exc) -> None:
        elapsed = time.monotonic() - self.started
        progress.finish(self._bar, f"{self.label}: {sum(self._done.values())} requests, "
                                   f"{sum(self._ok.values())} ok, in {elapsed:.1f} s")

    def update(self, worker: int, n_done: int, n_ok: int, fresh: list) -> None:
        self._done[worker], self._ok[worker] = n_done, n_ok
        if fresh:
            self._recent.append(np.asarray(fresh))
        if self._bar.disable:
            return
        elapsed = time.monotonic() - self.started
        if self.live is not None:
            self._bar.set_description_str(self.live(elapsed), refresh=False)
        window = np.concatenate(self._recent) if self._recent else np.empty(0)
        p95 = f"{percentile(window, 95) * 1000:.1f} ms" if len(window) else "-"
        self._bar.n = sum(self._done.values())
        self._ok_at.append((elapsed, sum(self._ok.values())))
        self._bar.set_postfix_str(f"{self._ok_per_s():.0f} ok/s, p95 {p95}", refresh=True)

    def _ok_per_s(self) -> float:
        """Answers per second over the last few reports, as the bar's rate now is: a mean since the
        start would lag a step up or down by as long as the run has gone."""
        (then, ok_then), (now, ok_now) = self._ok_at[0], self._ok_at[-1]
        if now - then < PROGRESS_EVERY_S:
            return ok_now / max(now, PROGRESS_EVERY_S)
        return (ok_now - ok_then) / (now - then)
