"""Answers computed from the learner's own saved load-test results.

A computed question names one function here and a result directory (relative to the results
root, `$SERVELAB_RESULTS` or ./results). The expected answer is whatever the learner's own run
says, so two learners on different machines get different keys and both can be right.

A saved result is what `Result.save` writes (`requests.csv` and `meta.json`); a saved sweep is a
directory of them, one per offered rate. The numbers are read with the same code the learner's
own tables came from (`Result.summary`: HdrHistogram percentiles over successful requests, the
schedule's offered rate), so a key can never disagree with the table the learner read it off.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

class ResultError(ValueError):
    """A saved result that cannot answer the question; says which directory and why."""


@dataclass(frozen=True)
class RunStats:
    """What a question needs from one saved run."""

    path: Path
    offered_rate: float  # requests per second the schedule offered
    p95_ms: float
    failed: int
    requests: int


def results_root() -> Path:
    """$SERVELAB_RESULTS, else ./results (the labs save their runs there)."""
    return Path(os.environ.get("SERVELAB_RESULTS") or "results")


def run_stats(run_dir: str | Path) -> RunStats:
    """Read one saved result directory and summarise it as the learner's own tables do."""
    from servelab.load.result import Result  # here, not at the top: showing a quiz should not wait for pandas

    path = Path(run_dir)
    if not (path / "requests.csv").is_file() or not (path / "meta.json").is_file():
        raise ResultError(f"{path}: no saved run here (requests.csv and meta.json); save your run with "
                          f"result.save({str(path)!r})")
    try:
        summary = Result.load(path).summary()
    except (ValueError, KeyError) as error:
        raise ResultError(f"{path}: cannot read this saved run ({error})") from None
    if summary["ok"] == 0:
        raise ResultError(f"{path}: no successful request, so there is no latency to read")
    return RunStats(path=path, offered_rate=summary["offered_rate"], p95_ms=summary["p95"],
                    failed=summary["errors"], requests=summary["requests"])


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
