"""Whether a run showed what a lab expects: an effect past a stated threshold, not any difference.

Two p95s of 1.62 and 1.36 ms, both thirty times under the SLO, differ; they show nothing. A lab's
claim counts as shown only when the numbers clear a threshold that makes it meaningful: the SLO
crossed (or requests failed) on one side and not the other, or a ratio larger than the run's own
window-to-window spread (and at least `MIN_RATIO`). Each check returns a `Finding`, which the lab
prints (`lab.finding`) and records beside its results, so tests and learners read the same verdict.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from servelab.core.result import Result, percentile

MIN_RATIO = 2.0  # a "slower"/"costlier" claim needs at least this ratio, whatever the noise
WINDOWS = 4  # a run's p95 is also taken over this many equal windows, to see its own spread


@dataclass(frozen=True)
class Finding:
    """A lab's claim, whether this run shows it, the numbers that decided, and what to do if not.

    `cannot` is set (and `holds` is False) when this machine cannot show the claim at all, with why.
    """

    id: str
    claim: str
    holds: bool
    evidence: str
    otherwise: str = ""
    cannot: str = ""

    def __str__(self) -> str:
        if self.cannot:
            return f"This machine cannot show that {_lower(self.claim)}\n  Why: {self.cannot}"
        if self.holds:
            return f"This run shows it: {self.claim}\n  ({self.evidence})"
        return f"This run did NOT show that {_lower(self.claim)}\n  ({self.evidence})\n  {self.otherwise}"

    def record(self, path: Path) -> None:
        """Append this finding as one JSON line to `path` (the lab's findings file)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as out:
            out.write(json.dumps(asdict(self)) + "\n")


def read(path: Path) -> dict[str, Finding]:
    """The findings recorded in `path`, by id (a later line replaces an earlier one of the same id)."""
    if not path.exists():
        return {}
    found = [Finding(**json.loads(line)) for line in path.read_text().splitlines() if line.strip()]
    return {f.id: f for f in found}


def window_p95(result: Result, windows: int = WINDOWS) -> np.ndarray:
    """p95 (ms) of a run's successful requests in each of `windows` equal slices of its schedule."""
    frame = result.frame[result.ok]
    if frame.empty:
        return np.array([np.nan])
    edges = np.linspace(frame.intended_s.min(), frame.intended_s.max() + 1e-9, windows + 1)
    slices = np.digitize(frame.intended_s, edges[1:-1])
    latency = frame.latency_s.to_numpy() * 1000
    return np.array([percentile(latency[slices == i], 95) for i in range(windows) if (slices == i).any()])


def spread(*results: Result) -> float:
    """The largest ratio between two windows' p95 within any one of `results`: the runs' own noise."""
    ratios = [np.nanmax(w) / np.nanmin(w) for w in (window_p95(r) for r in results) if np.nanmin(w) > 0]
    return float(max(ratios, default=1.0))


def ratio_threshold(*results: Result) -> float:
    """How many times larger one figure must be than another to count: MIN_RATIO or the runs' spread."""
    return max(MIN_RATIO, spread(*results))


def _lower(text: str) -> str:
    return text[:1].lower() + text[1:]
