"""Open-loop traffic schedules: how many requests per second to offer at each moment.

A schedule is a rate curve over `[0, duration)`. It answers two questions: the offered rate at
any time (`rate_at`, for plots and the simulator) and the intended send time of every request
(`send_times`, for the load generator and the simulator). Latency is measured from those
intended times, so a generator that falls behind cannot hide a slow server.

Deterministic schedules place request k where the cumulative rate reaches k (evenly spaced at a
constant rate); `Poisson` and `Random(schedule)` draw independent arrivals, as real users make them. All of them round-trip through
`to_dict()` / `from_dict()` so a saved run records exactly what was offered.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# Resolution of the numeric inversion of the cumulative rate, in grid points per second of
# schedule, bounded so that a 24-hour day stays a few megabytes.
_GRID_PER_S = 1000
_GRID_MIN, _GRID_MAX = 1_000, 2_000_000
_RANGE_SAMPLES = 1000  # grid points at which `rate_range` reads a curve


def _check_rate(rate: float, what: str = "rate") -> float:
    rate = float(rate)
    if not math.isfinite(rate) or rate < 0:
        raise ValueError(f"{what} must be a finite number of requests/s >= 0, got {rate!r}")
    return rate


def _check_duration(duration: float, what: str = "duration") -> float:
    duration = float(duration)
    if not math.isfinite(duration) or duration <= 0:
        raise ValueError(f"{what} must be a positive number of seconds, got {duration!r}")
    return duration


class Schedule:
    """A rate curve over [0, duration). Subclasses define `_rate(t)` on an array and `to_dict()`."""

    duration: float

    def _rate(self, t: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _breakpoints(self) -> np.ndarray:
        """Times where the rate curve has a kink or a jump (kept exact in the inversion grid)."""
        return np.array([0.0, self.duration])

    def to_dict(self) -> dict:
        raise NotImplementedError

    def rate_at(self, t: float | np.ndarray) -> float | np.ndarray:
        """Offered rate (requests/s) at time `t` seconds; 0 outside [0, duration)."""
        arr = np.asarray(t, dtype=np.float64)
        inside = (arr >= 0) & (arr < self.duration)
        rate = np.where(inside, self._rate(np.clip(arr, 0.0, self.duration)), 0.0)
        return float(rate) if np.ndim(t) == 0 else rate

    def rate_range(self) -> tuple[float, float]:
        """The lowest and highest rate offered, e.g. to name a changing schedule by its rates, not its mean.

        Read at every breakpoint and on a fine grid, so steps, trace points and a ramp's ends are
        exact and a smooth curve's extremes are within a thousandth of its duration.
        """
        rates = self._rate(np.union1d(np.linspace(0.0, self.duration, _RANGE_SAMPLES), self._breakpoints()))
        return float(rates.min()), float(rates.max())

    def send_times(self, seed: int = 0) -> np.ndarray:
        """Intended send offsets in seconds, sorted, float64. `seed` only matters for random arrivals."""
        grid, cumulative = self._cumulative()
        targets = np.arange(_count(cumulative[-1]), dtype=np.float64)
        return _invert(grid, cumulative, targets)

    def _cumulative(self) -> tuple[np.ndarray, np.ndarray]:
        """A time grid and the number of requests offered up to each grid time (trapezoid rule)."""
        n = int(min(max(self.duration * _GRID_PER_S, _GRID_MIN), _GRID_MAX)) + 1
        grid = np.union1d(np.linspace(0.0, self.duration, n), self._breakpoints())
        # Sample the rate just inside each cell so jumps at breakpoints integrate exactly.
        left = self._rate(grid[:-1])
        right = self._rate(np.nextafter(grid[1:], -np.inf))
        steps = np.diff(grid) * (left + right) / 2.0
        return grid, np.concatenate(([0.0], np.cumsum(steps)))


def _count(expected: float) -> int:
    """Requests k = 0, 1, ... placed while k < expected (rounding noise in the integral ignored)."""
    return math.ceil(round(expected, 6))


def _invert(grid: np.ndarray, cumulative: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Times at which the cumulative count first reaches each target (linear within a cell)."""
    idx = np.searchsorted(cumulative, targets, side="left").clip(1, len(grid) - 1)
    c0, c1 = cumulative[idx - 1], cumulative[idx]
    t0, t1 = grid[idx - 1], grid[idx]
    frac = np.where(c1 > c0, (targets - c0) / np.where(c1 > c0, c1 - c0, 1.0), 0.0)
    # Rounded to the nanosecond so summation noise cannot move a request across a step edge.
    times = np.round(t0 + np.clip(frac, 0.0, 1.0) * (t1 - t0), 9)
    return np.minimum(times, np.nextafter(grid[-1], -np.inf))


@dataclass(frozen=True)
class _SteadyRate(Schedule):
    """One rate for the whole run; Constant and Poisson differ only in how arrivals are placed."""

    rate: float
    duration: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "rate", _check_rate(self.rate))
        object.__setattr__(self, "duration", _check_duration(self.duration))

    def _rate(self, t: np.ndarray) -> np.ndarray:
        return np.full(np.shape(t), self.rate)


@dataclass(frozen=True)
class Constant(_SteadyRate):
    """`rate` requests/s, evenly spaced, for `duration` seconds."""

    def send_times(self, seed: int = 0) -> np.ndarray:
        # Exact: request k at k / rate.
        count = _count(self.rate * self.duration)
        return np.arange(count, dtype=np.float64) / self.rate if count else np.empty(0)

    def to_dict(self) -> dict:
        return {"kind": "constant", "rate": self.rate, "duration": self.duration}


@dataclass(frozen=True)
class Poisson(_SteadyRate):
    """Independent arrivals at mean `rate` requests/s (exponential gaps), as from many users."""

    seed: int = 0

    def send_times(self, seed: int = 0) -> np.ndarray:
        """A Poisson process: a Poisson count of arrivals placed uniformly, then sorted.

        The schedule's own `seed` and the call's `seed` are combined, so repeated runs of one
        schedule can draw different but reproducible arrivals.
        """
        rng = np.random.default_rng([int(self.seed), int(seed)])
        count = rng.poisson(self.rate * self.duration)
        return np.sort(rng.uniform(0.0, self.duration, size=count))

    def to_dict(self) -> dict:
        return {"kind": "poisson", "rate": self.rate, "duration": self.duration, "seed": self.seed}


@dataclass(frozen=True)
class Step(Schedule):
    """Constant rates one after another: `steps=[(duration_s, rate), ...]`."""

    steps: tuple[tuple[float, float], ...]
    duration: float = field(init=False)

    def __post_init__(self) -> None:
        if not self.steps:
            raise ValueError("Step needs at least one (duration_s, rate) pair, e.g. Step([(10, 50), (10, 200)])")
        steps = tuple(
            (_check_duration(d, f"step {i} duration"), _check_rate(r, f"step {i} rate"))
            for i, (d, r) in enumerate(self.steps)
        )
        object.__setattr__(self, "steps", steps)
        object.__setattr__(self, "duration", float(sum(d for d, _ in steps)))

    def _edges(self) -> np.ndarray:
        return np.concatenate(([0.0], np.cumsum([d for d, _ in self.steps])))

    def _breakpoints(self) -> np.ndarray:
        return self._edges()

    def step_at(self, t: float | np.ndarray) -> int | np.ndarray:
        """Index of the step running at `t` seconds (the first before 0, the last from the end on),
        so a progress bar can say which step a run is in rather than the mean of all of them."""
        idx = np.clip(np.searchsorted(self._edges(), t, side="right") - 1, 0, len(self.steps) - 1)
        return int(idx) if np.ndim(t) == 0 else idx

    def _rate(self, t: np.ndarray) -> np.ndarray:
        return np.array([r for _, r in self.steps])[self.step_at(t)]

    def to_dict(self) -> dict:
        return {"kind": "step", "steps": [list(s) for s in self.steps]}


@dataclass(frozen=True)
class Ramp(Schedule):
    """A rate rising (or falling) linearly from `start_rate` to `end_rate` over `duration` seconds."""

    start_rate: float
    end_rate: float
    duration: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "start_rate", _check_rate(self.start_rate, "start_rate"))
        object.__setattr__(self, "end_rate", _check_rate(self.end_rate, "end_rate"))
        object.__setattr__(self, "duration", _check_duration(self.duration))

    def _rate(self, t: np.ndarray) -> np.ndarray:
        return self.start_rate + (self.end_rate - self.start_rate) * np.asarray(t) / self.duration

    def to_dict(self) -> dict:
        return {"kind": "ramp", "start_rate": self.start_rate, "end_rate": self.end_rate, "duration": self.duration}


@dataclass(frozen=True)
class Diurnal(Schedule):
    """A daily traffic curve: a cosine around `mean_rate` whose peak is `peak_to_trough` times its trough.

    `period` is the length of a "day" in seconds (86400 for a real day; shorter to compress a day
    into a lab run). `peak_at` is when in the period traffic peaks; by default mid-period, so a
    run starting at t=0 starts at the night-time trough ("midnight") and peaks at "noon".
    """

    mean_rate: float
    peak_to_trough: float
    duration: float
    period: float = 86400.0
    peak_at: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean_rate", _check_rate(self.mean_rate, "mean_rate"))
        object.__setattr__(self, "duration", _check_duration(self.duration))
        object.__setattr__(self, "period", _check_duration(self.period, "period"))
        ratio = float(self.peak_to_trough)
        if not math.isfinite(ratio) or ratio < 1:
            raise ValueError(f"peak_to_trough is peak rate / trough rate and must be >= 1, got {ratio!r}")
        object.__setattr__(self, "peak_to_trough", ratio)
        peak_at = self.period / 2 if self.peak_at is None else float(self.peak_at)
        object.__setattr__(self, "peak_at", peak_at)

    @property
    def amplitude(self) -> float:
        """Relative swing a: peak = mean (1 + a), trough = mean (1 - a)."""
        return (self.peak_to_trough - 1) / (self.peak_to_trough + 1)

    def _rate(self, t: np.ndarray) -> np.ndarray:
        phase = 2 * np.pi * (np.asarray(t) - self.peak_at) / self.period
        return self.mean_rate * (1 + self.amplitude * np.cos(phase))

    def to_dict(self) -> dict:
        return {
            "kind": "diurnal",
            "mean_rate": self.mean_rate,
            "peak_to_trough": self.peak_to_trough,
            "duration": self.duration,
            "period": self.period,
            "peak_at": self.peak_at,
        }


@dataclass(frozen=True)
class Trace(Schedule):
    """A recorded rate curve: rate (requests/s) at given times, linear in between.

    The schedule runs from 0 to the last time; the first time must be 0.
    """

    times: tuple[float, ...]
    rates: tuple[float, ...]
    source: str | None = None
    duration: float = field(init=False)

    def __post_init__(self) -> None:
        if len(self.times) != len(self.rates) or len(self.times) < 2:
            raise ValueError("a Trace needs at least two (time_s, rate) rows, one rate per time")
        times = tuple(float(t) for t in self.times)
        rates = tuple(_check_rate(r, f"rate at time {t}") for t, r in zip(times, self.rates))
        if times[0] != 0 or any(b <= a for a, b in zip(times, times[1:])):
            raise ValueError("Trace times must start at 0 and increase strictly, e.g. 0, 60, 120")
        object.__setattr__(self, "times", times)
        object.__setattr__(self, "rates", rates)
        object.__setattr__(self, "duration", times[-1])

    @classmethod
    def from_csv(cls, path: str | Path) -> Trace:
        """Read a CSV with a header row and columns `time_s` and `rate`."""
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        if not rows or not {"time_s", "rate"} <= set(rows[0]):
            raise ValueError(f"{path}: expected a CSV with header columns time_s,rate")
        return cls(
            times=tuple(float(r["time_s"]) for r in rows),
            rates=tuple(float(r["rate"]) for r in rows),
            source=str(path),
        )

    def _breakpoints(self) -> np.ndarray:
        return np.array(self.times)

    def _rate(self, t: np.ndarray) -> np.ndarray:
        return np.interp(t, self.times, self.rates)

    def to_dict(self) -> dict:
        return {"kind": "trace", "times": list(self.times), "rates": list(self.rates), "source": self.source}


@dataclass(frozen=True)
class Random(Schedule):
    """The rate curve of `of`, with random arrivals: many independent users following it.

    Deterministic schedules place requests evenly along the curve, which no crowd of users does:
    evenly spaced arrivals hardly ever queue, so a test (or a simulation) on them flatters every
    server. This draws a Poisson process whose rate follows the curve exactly: a Poisson count of
    arrivals for the whole run, placed where the cumulative rate reaches uniformly drawn levels.
    `Random(Constant(r, d))` is `Poisson(r, d)`.
    """

    of: Schedule
    seed: int = 0
    duration: float = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "duration", self.of.duration)

    def _rate(self, t: np.ndarray) -> np.ndarray:
        return self.of._rate(t)

    def _breakpoints(self) -> np.ndarray:
        return self.of._breakpoints()

    def send_times(self, seed: int = 0) -> np.ndarray:
        """Sorted arrival times; the schedule's `seed` and the call's are combined, as in `Poisson`."""
        grid, cumulative = self._cumulative()
        rng = np.random.default_rng([int(self.seed), int(seed)])
        levels = np.sort(rng.uniform(0.0, cumulative[-1], size=rng.poisson(cumulative[-1])))
        return _invert(grid, cumulative, levels)

    def to_dict(self) -> dict:
        return {"kind": "random", "of": self.of.to_dict(), "seed": self.seed}


_KINDS = {"constant": Constant, "poisson": Poisson, "step": Step, "ramp": Ramp, "diurnal": Diurnal, "trace": Trace,
          "random": Random}


def from_dict(d: dict) -> Schedule:
    """Rebuild a schedule from `Schedule.to_dict()` (e.g. a saved run's metadata)."""
    params = dict(d)
    kind = params.pop("kind", None)
    if kind not in _KINDS:
        raise ValueError(f"unknown schedule kind {kind!r}; expected one of {', '.join(_KINDS)}")
    if kind == "step":
        params["steps"] = [tuple(s) for s in params["steps"]]
    if kind == "trace":
        params["times"], params["rates"] = tuple(params["times"]), tuple(params["rates"])
    if kind == "random":
        params["of"] = from_dict(params["of"])
    return _KINDS[kind](**params)
