"""Answers computed from the learner's own saved runs.

A computed question names one function here, the saved result(s) it reads (paths under the
results root, `$SERVELAB_RESULTS` or ./results) and its arguments. The expected answer is whatever
the learner's own run says, so two learners on different machines get different keys and both
can be right; and since a lab saves its runs again each time it runs, the key is always the last
saved run.

What a lab saves: a load run (`Result.save`: requests.csv + meta.json), a sweep (`Sweep.save`: one
run-NN directory per rate), a table it printed (`DataFrame.to_csv`), or raw in-process latencies
(`numpy.savetxt`). Every figure is read with the code the learner's own table came from
(`Result.summary`, `Result.late_share`, `Sweep.summary` with `sweeps.max_rate_within_slo` and
`sweeps.cost_by_rate`, `replicas.scaling_table`, `compare.step_comparison`, `cost.cost_of_result`,
`architectures.compare_live`), so a key can never disagree with the table the learner read it off.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from servelab.core.result import Result
    from servelab.load.rate_sweep import Sweep


class ResultError(ValueError):
    """A saved result that cannot answer the question; says which path and why."""


def results_root() -> Path:
    """$SERVELAB_RESULTS, else ./results (the labs save their runs there)."""
    return Path(os.environ.get("SERVELAB_RESULTS") or "results")


# --- reading what a lab saved -----------------------------------------------------------------

def _result(path: Path) -> Result:
    from servelab.core.result import (
        Result,  # here, not at the top: showing a quiz should not wait for pandas
    )

    if not (path / "requests.csv").is_file() or not (path / "meta.json").is_file():
        raise ResultError(f"{path}: no saved run here (requests.csv and meta.json); run the lab's cell that saves it")
    result = Result.load(path)
    if result.ok_count == 0:
        raise ResultError(f"{path}: no successful request, so there is no latency to read")
    return result


def _sweep(path: Path) -> Sweep:
    from servelab.load.rate_sweep import Sweep

    if not any(path.glob("run-*/requests.csv")):
        raise ResultError(f"{path}: no saved sweep here (run-00, run-01, ...); run and save the sweep first")
    return Sweep.load(path)


def _table(path: Path) -> pd.DataFrame:
    import pandas as pd

    if not path.is_file():
        raise ResultError(f"{path}: no saved table here; run the lab's cell that saves it")
    return pd.read_csv(path, index_col=0)


def _samples(path: Path) -> np.ndarray:
    import numpy as np

    if not path.is_file():
        raise ResultError(f"{path}: no saved latencies here; run the lab's cell that saves them")
    return np.loadtxt(path, ndmin=1)


def _row(table: pd.DataFrame, row: str | None) -> pd.Series:
    if row is None:
        return table.iloc[0]
    if row not in table.index:
        raise ResultError(f"no row {row!r} in this table (rows: {', '.join(map(str, table.index))})")
    return table.loc[row]


# --- one saved run ----------------------------------------------------------------------------

def summary_value(run: Path, key: str) -> float:
    """One figure of a saved run's summary (`result.summary()[key]`: p50, p95, achieved_rate, ...)."""
    return float(_result(run).summary()[key])


def p99_ratio(run: Path, other: Path) -> float:
    """How many times `run`'s p99 is `other`'s: two tests of the same server side by side."""
    return summary_value(run, "p99") / summary_value(other, "p99")


def late_share_pct(run: Path, slo_ms: float) -> float:
    """Percent of a saved run's requests over `slo_ms` or failed (`Result.late_share`), as the labs' tables show it."""
    return 100 * _result(run).late_share(slo_ms)


def _warm_ms(run: Path) -> tuple[float, float]:
    """Median client-side and model time (ms) of one-at-a-time requests, the cold first one left out."""
    warm = _result(run).frame.iloc[1:]
    return warm["service_s"].median() * 1000, warm["infer_s"].median() * 1000


def warm_median_ms(run: Path) -> float:
    """Median time (ms) a warm request took at the client, as lab 01 prints it."""
    return _warm_ms(run)[0]


def overhead_share_pct(run: Path) -> float:
    """Percent of a warm request's median time spent outside the model (HTTP, JSON, framework)."""
    http_ms, model_ms = _warm_ms(run)
    return 100 * (http_ms - model_ms) / http_ms


def http_to_model_ratio(run: Path) -> float:
    """How many times the model's own time a warm HTTP request took."""
    http_ms, model_ms = _warm_ms(run)
    return http_ms / model_ms


def per_million_ratio(run: Path, other: Path) -> float:
    """How many times `other`'s $ per 1M predictions `run`'s is (servelab.core.cost, from the recorded pods)."""
    from servelab.core import cost

    price = cost.load_pricing()
    return cost.cost_of_result(_result(run), price).per_million / cost.cost_of_result(_result(other), price).per_million


def idle_share_pct(run: Path) -> float:
    """Percent of a run's bill that paid for reserved capacity its pods left unused: the "idle share" of
    `cost.cost_of_result`, as lab 06's serving-ways table shows it. Latency tables cannot show it; only
    the pods' recorded CPU use can, so it tells whether a replica that looked fast was also busy."""
    from servelab.core import cost

    share = cost.cost_of_result(_result(run), cost.load_pricing()).idle_share
    if share is None:
        raise ResultError(f"{run}: this run recorded no pod's CPU use, so its idle share is unknown; "
                          "run the load with cluster=<your Cluster> so the pods are measured")
    return 100 * share


def step_run_value(run: Path, column: str, slo_ms: float) -> float:
    """One column of lab 05's step comparison (`compare.step_comparison`) for one saved run of the step."""
    from servelab.analysis import compare, timelines
    from servelab.core import cost

    result = _result(run)
    schedule = result.meta.get("schedule") or {}
    steps = (schedule.get("of") or schedule).get("steps")
    if not steps:
        raise ResultError(f"{run}: this run's schedule is not a step of traffic, so it has no peak")
    edges = timelines.step_edges(steps)
    table = compare.step_comparison({"run": result}, cost.load_pricing(), peak=(edges[1], edges[2]), slo_ms=slo_ms)
    return float(table.loc["run", column])


def live_check_value(live: Path, predicted: Path, row: str, column: str, slo_ms: float) -> float:
    """One cell of lab 07's live check (`architectures.compare_live`), e.g. row 'p95 (ms)', column 'measured'."""
    from servelab import architectures
    from servelab.core import cost

    table = architectures.compare_live(_result(live), _result(predicted), cost.load_pricing(), slo_ms)
    return float(table.loc[row, column])


# --- a sweep ----------------------------------------------------------------------------------

def _best_rate(sweep_dir: Path, slo_ms: float) -> tuple[Sweep, float]:
    from servelab.analysis import sweeps

    sweep = _sweep(sweep_dir)
    best = sweeps.max_rate_within_slo(sweep.summary(), slo_ms)
    if best == 0:
        raise ResultError(f"{sweep_dir}: no rate in this sweep kept p95 within {slo_ms:g} ms without failures")
    return sweep, best


def max_rate_under_slo(sweep_dir: Path, slo_ms: float) -> float:
    """Highest offered rate (req/s) of the sweep whose p95 met the SLO with no failed request."""
    return _best_rate(sweep_dir, slo_ms)[1]


def p95_ms_at_highest_rate_under_slo(sweep_dir: Path, slo_ms: float) -> float:
    """p95 in ms at that highest rate: how much head-room the SLO had left there."""
    sweep, best = _best_rate(sweep_dir, slo_ms)
    return float(sweep.summary().loc[best, "p95"])


def _top_row(sweep_dir: Path) -> pd.Series:
    """The summary row (`Sweep.summary`) of a saved sweep's highest offered rate; its name is that rate."""
    return _sweep(sweep_dir).summary().sort_index().iloc[-1]


def achieved_rate_at_top_rate(sweep_dir: Path) -> float:
    """What the highest offered rate of the sweep actually got answered (req/s)."""
    return float(_top_row(sweep_dir)["achieved_rate"])


def cost_ratio_lowest_to_best(sweep_dir: Path, slo_ms: float) -> float:
    """$ per 1M predictions at the sweep's lowest rate over the same at its highest rate within the SLO."""
    from servelab.analysis import sweeps

    sweep, best = _best_rate(sweep_dir, slo_ms)
    per_million = sweeps.cost_by_rate(sweep)["$ per 1M predictions"].sort_index()
    return float(per_million.iloc[0] / per_million.loc[round(best, 2)])


def late_pct_at_top_rate(sweep_dir: Path, slo_ms: float) -> float:
    """Percent of the requests at the sweep's highest offered rate answered after `slo_ms` or failed
    (`Result.late_share`, the "over ... ms or failed (%)" column of lab 04's mistakes table).

    A p95 covers answered requests only and says nothing of how many missed; this share counts every
    miss, so it is what the users of an overloaded pod saw.
    """
    top = max(_sweep(sweep_dir), key=lambda run: run.summary()["offered_rate"])
    return 100 * top.late_share(slo_ms)


def p95_ratio_at_top_rate(sweep_dir: Path, other: Path) -> float:
    """How many times `other`'s p95 `sweep_dir`'s is, at the highest offered rate of both sweeps: what a
    server setting (e.g. dynamic batching) changed where it matters, under the heaviest load."""
    top, other_top = _top_row(sweep_dir), _top_row(other)
    if top.name != other_top.name:
        raise ResultError(f"{sweep_dir} ends at {top.name:g} req/s, {other} at {other_top.name:g}: the two sweeps "
                          "must offer the same rates; run and save both again")
    if not top["p95"] > 0 or not other_top["p95"] > 0:
        raise ResultError(f"{sweep_dir}, {other}: no request succeeded at {top.name:g} req/s in one of them, "
                          "so it has no p95 to compare")
    return float(top["p95"] / other_top["p95"])


def p50_rise_at_lowest_rate(sweep_dir: Path, other: Path) -> float:
    """p50 (ms) at the lowest rate of `sweep_dir` minus the same of `other`: what a setting costs a lone request."""
    def lowest_p50(path: Path) -> float:
        return float(_sweep(path).summary().sort_index()["p50"].iloc[0])

    return lowest_p50(sweep_dir) - lowest_p50(other)


# --- lab 04's sweeps, one per replica count (replicas-N) ----------------------------------------

def _by_replicas(directory: Path) -> dict[int, Sweep]:
    counts = sorted(int(p.name.removeprefix("replicas-")) for p in directory.glob("replicas-*")
                    if p.name.removeprefix("replicas-").isdigit())
    if len(counts) < 2:
        raise ResultError(f"{directory}: needs the saved sweeps of two replica counts or more (replicas-1, replicas-2, ...)")
    return {n: _sweep(directory / f"replicas-{n}") for n in counts}


def replicas_speed_up(directory: Path) -> float:
    """The speed-up of the most replicas over the fewest (`replicas.scaling_table`, section 4 of lab 04)."""
    from servelab.analysis import replicas

    return float(replicas.scaling_table(_by_replicas(directory))["speed-up"].iloc[-1])


def cost_ratio_most_to_fewest(directory: Path) -> float:
    """At the lowest rate, $ per 1M predictions with the most replicas over the same with the fewest."""
    from servelab.analysis import sweeps

    by_count = _by_replicas(directory)
    few, many = min(by_count), max(by_count)
    lowest = [sweeps.cost_by_rate(by_count[n])["$ per 1M predictions"].sort_index().iloc[0] for n in (few, many)]
    return float(lowest[1] / lowest[0])


def pods_cpu_share_pct(directory: Path) -> float:
    """Percent of their CPU limit the pods of the most replicas used in their busiest run (section 4 of
    lab 04, `replicas.scaling_table`): well under 100 means this machine's cores, not the pods' limits,
    held them back, which no latency figure tells apart."""
    from servelab.analysis import replicas

    by_count = _by_replicas(directory)
    if any(pod.get("cpu_used_core_s") is None for sweep in by_count.values() for run in sweep
           for pod in run.meta.get("pods", [])):
        raise ResultError(f"{directory}: the runs recorded no CPU use for some pods (a backend without pod "
                          "metrics), so their share of the limit is unknown")
    most = replicas.scaling_table(by_count).iloc[-1]
    limit = most["CPU limit of the pods (cores)"]
    if not limit > 0:
        raise ResultError(f"{directory}: the runs record no CPU limit for their pods, so there is no share of it")
    return float(100 * most["pods' CPU (cores)"] / limit)


# --- a saved table or raw latencies -------------------------------------------------------------

def table_value(table: Path, column: str, row: str | None = None) -> float:
    """One cell of a table the lab printed and saved (the first row unless `row` names one)."""
    frame = _table(table)
    if column not in frame.columns:
        raise ResultError(f"{table}: no column {column!r} (columns: {', '.join(frame.columns)})")
    return float(_row(frame, row)[column])


def table_share_pct(table: Path, part: str, whole: str, row: str | None = None) -> float:
    """Percent that column `part` is of column `whole` in one row of a saved table."""
    return 100 * table_value(table, part, row) / table_value(table, whole, row)


def percentile_us(samples: Path, q: float) -> float:
    """The `q`th percentile of saved latencies, as `core.result.percentile` computes it in the lab."""
    from servelab.core.result import percentile

    return percentile(_samples(samples), q)


def tail_ratio(samples: Path, upper: float = 99, lower: float = 50) -> float:
    """How many times the `lower` percentile the `upper` one is: the length of the tail."""
    return percentile_us(samples, upper) / percentile_us(samples, lower)


def share_slower_pct(samples: Path, times_median: float) -> float:
    """Percent of saved latencies longer than `times_median` times their median: how heavy the tail is."""
    import numpy as np

    latencies = _samples(samples)
    return float(100 * np.mean(latencies > times_median * np.median(latencies)))


FUNCTIONS: dict[str, Callable[..., float]] = {
    f.__name__: f for f in (
        summary_value, p99_ratio, late_share_pct, warm_median_ms, overhead_share_pct, http_to_model_ratio, per_million_ratio,
        step_run_value, live_check_value, max_rate_under_slo, p95_ms_at_highest_rate_under_slo,
        achieved_rate_at_top_rate, cost_ratio_lowest_to_best, p50_rise_at_lowest_rate, replicas_speed_up,
        cost_ratio_most_to_fewest, table_value, table_share_pct, percentile_us, tail_ratio, share_slower_pct,
        idle_share_pct, late_pct_at_top_rate, p95_ratio_at_top_rate, pods_cpu_share_pct,
    )
}


def result_paths(compute: dict, root: str | Path | None = None) -> list[Path]:
    """The saved results a `compute` spec reads, under the results root."""
    named = compute["result"]
    return [Path(root or results_root()) / r for r in ([named] if isinstance(named, str) else named)]


def expected(compute: dict, root: str | Path | None = None) -> float:
    """Evaluate a question's `compute` spec against the learner's results; ResultError if it can't."""
    paths = result_paths(compute, root)
    try:
        return float(FUNCTIONS[compute["function"]](*paths, **compute.get("args", {})))
    except ResultError:
        raise
    except (KeyError, IndexError, TypeError, ValueError, ZeroDivisionError, OSError) as error:
        # A saved file the learner edited or cut short must not stop the whole quiz from being graded.
        raise ResultError(f"{', '.join(map(str, paths))}: cannot read this saved result ({error!r})") from None
