"""Answers computed from the learner's own saved load-test results.

A computed question names one function here and a result directory (relative to the results
root, `$SERVELAB_RESULTS` or ./results). The expected answer is whatever the learner's own run
says, so two learners on different machines get different keys and both can be right.

A saved result is a directory with `requests.csv` (columns intended_s, sent_s, latency_s,
service_s, status, bytes, replica, error; one row per request) and `meta.json`. A saved sweep is
a directory whose subdirectories are saved results, one per offered rate. The numbers follow
the load package's summary, computed here independently with numpy: percentiles (numpy's
default interpolation) over successful (2xx) requests, failures counted beside them, offered
rate = requests / scheduled duration (`duration_s` in meta.json, else from the send times).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REQUIRED_COLUMNS = ("intended_s", "latency_s", "status")


class ResultError(ValueError):
    """A saved result that cannot answer the question; says which directory and why."""


@dataclass(frozen=True)
class RunStats:
    """What a question needs from one saved run."""

    path: Path
    offered_rate: float  # requests per second, from the intended send times
    p95_ms: float
    failed: int
    requests: int


def results_root() -> Path:
    """$SERVELAB_RESULTS, else ./results (the labs save their runs there)."""
    return Path(os.environ.get("SERVELAB_RESULTS") or "results")


def run_stats(run_dir: str | Path) -> RunStats:
    """Read one saved result directory and summarise it."""
    path = Path(run_dir)
    csv = path / "requests.csv"
    if not csv.is_file():
        raise ResultError(f"{path}: no requests.csv here; save your run with result.save({str(path)!r})")
    import pandas as pd  # here, not at the top: showing a quiz should not wait for pandas

    frame = pd.read_csv(csv)
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ResultError(f"{csv}: missing column(s) {', '.join(missing)}")
    if len(frame) < 2:
        raise ResultError(f"{csv}: needs at least 2 requests, found {len(frame)}")
    status = frame["status"].fillna(0).to_numpy(dtype=int)
    ok = (status >= 200) & (status < 300)
    latency_ms = frame["latency_s"].to_numpy(dtype=float)[ok] * 1000.0
    if latency_ms.size == 0:
        raise ResultError(f"{csv}: no successful request, so there is no latency to read")
    return RunStats(
        path=path,
        offered_rate=len(frame) / _duration(path, frame),
        p95_ms=float(np.percentile(latency_ms, 95)),
        failed=int(np.sum(~ok)),
        requests=len(frame),
    )


def _duration(path: Path, frame: Any) -> float:
    """The scheduled duration: meta.json's `duration_s`, else n sends spaced 1/rate apart span (n-1)/rate."""
    meta_file = path / "meta.json"
    if meta_file.is_file():
        duration = json.loads(meta_file.read_text()).get("duration_s")
        if isinstance(duration, (int, float)) and duration > 0:
            return float(duration)
    intended = frame["intended_s"].to_numpy(dtype=float)
    span = float(np.nanmax(intended) - np.nanmin(intended))
    if span <= 0:
        raise ResultError(f"{path}: cannot tell the offered rate (no duration_s in meta.json, all sends at one time)")
    return span * len(frame) / (len(frame) - 1)


def sweep_stats(sweep_dir: str | Path) -> list[RunStats]:
    """Every saved result directly under `sweep_dir`, by offered rate."""
    path = Path(sweep_dir)
    runs = sorted(p.parent for p in path.glob("*/requests.csv"))
    if not runs:
        raise ResultError(f"{path}: no saved results (subdirectories with requests.csv); run and save the sweep first")
    return sorted((run_stats(r) for r in runs), key=lambda s: s.offered_rate)


def p95_ms(run_dir: str | Path) -> float:
    """p95 latency in ms of one saved run."""
    return run_stats(run_dir).p95_ms


def _best_under_slo(sweep_dir: str | Path, slo_ms: float) -> RunStats:
    meeting = [s for s in sweep_stats(sweep_dir) if s.p95_ms <= slo_ms and s.failed == 0]
    if not meeting:
        raise ResultError(f"{sweep_dir}: no rate in this sweep kept p95 within {slo_ms:g} ms without failures")
    return meeting[-1]


def max_rate_under_slo(sweep_dir: str | Path, slo_ms: float) -> float:
    """Highest offered rate (req/s) of the sweep whose p95 met the SLO with no failed request."""
    return _best_under_slo(sweep_dir, slo_ms).offered_rate


def p95_ms_at_highest_rate_under_slo(sweep_dir: str | Path, slo_ms: float) -> float:
    """p95 in ms at that highest rate: how much head-room the SLO had left there."""
    return _best_under_slo(sweep_dir, slo_ms).p95_ms


FUNCTIONS: dict[str, Callable[..., float]] = {
    f.__name__: f for f in (p95_ms, max_rate_under_slo, p95_ms_at_highest_rate_under_slo)
}


def expected(compute: dict, root: str | Path | None = None) -> float:
    """Evaluate a question's `compute` spec against the learner's results; ResultError if it can't."""
    function = FUNCTIONS[compute["function"]]
    return float(function(Path(root or results_root()) / compute["result"], **compute.get("args", {})))
