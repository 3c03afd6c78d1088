"""Latency against offered rate: one open-loop run per rate, in order, summarised in one table.

    results = load.sweep(url, rates=[50, 100, 200, 400, 800], duration=10)
    results.summary()            # one row per rate
    plots.latency_vs_rate(results, slo_ms=50)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from servelab.core import schedules
from servelab.core.result import Result
from servelab.load import runner

_COLUMNS = ["offered_rate", "achieved_rate", "ok", "errors", "p50", "p90", "p95", "p99", "max",
            "lag_p99", "generator_limited"]


class Sweep:
    """The Results of a rate sweep, in the order they ran."""

    def __init__(self, results: list[Result]) -> None:
        self.results = list(results)

    def __iter__(self) -> Iterator[Result]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, i: int) -> Result:
        return self.results[i]

    def summary(self) -> pd.DataFrame:
        """One row per run, indexed by offered rate: throughput, errors, percentiles (ms), lag."""
        rows = [{k: r.summary()[k] for k in _COLUMNS} for r in self.results]
        return pd.DataFrame(rows, columns=_COLUMNS).set_index("offered_rate").round(2)

    def to_frame(self) -> pd.DataFrame:
        """Every request of every run, with the run's offered rate as a column."""
        return pd.concat([r.frame.assign(offered_rate=r.summary()["offered_rate"]) for r in self.results],
                         ignore_index=True)

    def save(self, directory: str | Path) -> Path:
        """One sub-directory per run (run-00, run-01, ...), each as `Result.save` writes it."""
        directory = Path(directory)
        for i, result in enumerate(self.results):
            result.save(directory / f"run-{i:02d}")
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> Sweep:
        return cls([Result.load(d) for d in sorted(Path(directory).glob("run-*"))])

    def __repr__(self) -> str:
        return f"<Sweep of {len(self.results)} runs>\n{self.summary().to_string()}"

    def _repr_html_(self) -> str:
        return self.summary().to_html()


def sweep(url: str, rates: list[float], duration: float, *, arrivals: str = "poisson", seed: int = 0,
          progress: bool | None = None, **run_options) -> Sweep:
    """Open-loop runs at each rate in turn: random (Poisson) arrivals by default, or evenly spaced.

    Real users arrive independently of each other, so requests sometimes bunch up; evenly spaced
    arrivals (`arrivals="even"`) never do and flatter every server. `seed` makes the random
    arrivals repeatable (each rate draws its own from it). `run_options` go to
    `servelab.load.run` (protocol, body, timeout, cluster, workers, ...). Each run waits for its
    last answer before the next starts, so runs do not overlap; with a `cluster`, each also waits
    until its pods are idle (`Cluster.wait_idle`), so an overloaded rate's backlog does not leak
    into the next. A sweep longer than a few seconds in all shows one progress bar per rate, named
    by its place in the sweep ("sweep 3/9: poisson 150 req/s") so a long sweep says how far it is.
    """
    if arrivals not in ("poisson", "even"):
        raise ValueError(f"arrivals must be 'poisson' (random, as users arrive) or 'even'; got {arrivals!r}")
    if progress is None:
        progress = duration * len(rates) >= runner.PROGRESS_MIN_S
    runs = []
    cluster = run_options.get("cluster")
    for i, rate in enumerate(rates):
        if cluster is not None:
            cluster.wait_idle()
        schedule = schedules.Poisson(rate, duration, seed=seed) if arrivals == "poisson" else schedules.Constant(rate, duration)
        runs.append(runner.run(url, schedule, progress=progress, seed=i, progress_title=f"sweep {i + 1}/{len(rates)}",
                               **run_options))
    return Sweep(runs)
