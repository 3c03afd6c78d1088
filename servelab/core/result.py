"""What a load run measured: one row per request, a summary, and the run's metadata.

Every request ever scheduled is a row, failed or not (status 0 = no HTTP status, with the
reason in `error`). Latency percentiles are over successful (2xx) requests and come from an
HdrHistogram; failures are counted beside them, never folded in as fast successes. The
summary also checks the generator itself: when its schedule lag or its CPU use means the
client, not the server, shaped the numbers, it says so and marks the result.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Sequence
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path

import numpy as np
import pandas as pd
from hdrh.histogram import HdrHistogram
from numpy.typing import ArrayLike

COLUMNS = ["intended_s", "sent_s", "latency_s", "service_s", "status", "bytes", "replica", "error", "infer_s"]
PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p999": 99.9}
# The generator's own limits: beyond these the numbers describe the client as much as the server.
LAG_WARN_MS = 5.0
CPU_WARN = 0.9
_HIST_MAX_US = 3_600_000_000  # one hour, in microseconds
_NOT_SENT = "not sent:"


def environment() -> dict:
    """Where a run happened: CPU count, platform and the versions that shape its numbers."""

    def version(dist: str) -> str | None:
        try:
            return importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            return None

    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "versions": {
            "python": platform.python_version(),
            **{name: version(name) for name in ("servelab", "httptools", "uvloop", "onnxruntime", "numpy")},
        },
    }


class Result:
    """One load run: `frame` (one row per request), `meta` (what, where, when) and `summary()`."""

    def __init__(self, frame: pd.DataFrame, meta: dict) -> None:
        self.frame = frame
        self.meta = meta
        self._summary: dict | None = None

    @classmethod
    def from_records(cls, records: list, meta: dict, duration: float) -> Result:
        """Merge the shards' raw arrays into one table ordered by intended send time."""
        cat = lambda name: np.concatenate([getattr(r, name) for r in records])  # noqa: E731
        intended, sent, done = cat("intended"), cat("sent"), cat("done")
        frame = pd.DataFrame({
            "intended_s": intended,
            "sent_s": sent,
            "latency_s": done - intended,
            "service_s": done - sent,
            "status": cat("status").astype(np.int64),
            "bytes": cat("nbytes"),
            "replica": [x for r in records for x in r.replica],
            "error": [x for r in records for x in r.error],
            "infer_s": cat("infer"),
        })
        frame = frame.sort_values("intended_s", kind="stable").reset_index(drop=True)
        return cls(frame, {**meta, "duration_s": float(duration)})

    def to_frame(self) -> pd.DataFrame:
        return self.frame

    @property
    def ok(self) -> pd.Series:
        return (self.frame["status"] >= 200) & (self.frame["status"] < 300)

    @property
    def ok_count(self) -> int:
        return int(self.ok.sum())

    @property
    def duration_s(self) -> float:
        """The planned duration, or longer if successful answers kept arriving after it."""
        done = (self.frame["sent_s"] + self.frame["service_s"])[self.ok]
        return float(max(self.meta.get("duration_s", 0.0), done.max() if len(done) else 0.0))

    def late_share(self, slo_ms: float) -> float:
        """The share of requests that missed a latency SLO: answered after `slo_ms`, or failed.

        Percentiles cover answered requests only, so a run that fails requests can show a p95
        lower than it deserves; this counts both kinds of miss.
        """
        if len(self.frame) == 0:
            return 0.0
        return float(((self.frame["latency_s"] * 1000 > slo_ms) | ~self.ok).mean())

    def summary(self) -> dict:
        """Percentiles (ms), offered vs achieved rate, errors by status, schedule lag, warnings."""
        if self._summary is None:
            self._summary = _summarize(self)
        return self._summary

    def save(self, directory: str | Path) -> Path:
        """Write `requests.csv` (one row per request) and `meta.json` (metadata + summary)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.frame.to_csv(directory / "requests.csv", index=False, float_format="%.6f")
        doc = {**self.meta, "summary": self.summary()}
        (directory / "meta.json").write_text(json.dumps(doc, indent=2, default=_jsonable) + "\n")
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> Result:
        directory = Path(directory)
        frame = pd.read_csv(directory / "requests.csv", dtype={"replica": object, "error": object})
        for column in ("replica", "error"):
            frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
        meta = json.loads((directory / "meta.json").read_text())
        meta.pop("summary", None)  # recomputed from the table, so it cannot go stale
        return cls(frame, meta)

    def __repr__(self) -> str:
        s = self.summary()
        return (f"<Result {self.meta.get('mode', '?')} loop: {len(self.frame)} requests, ok {s['ok']}, "
                f"errors {s['errors']}, p50 {s['p50']:.2f} ms, p99 {s['p99']:.2f} ms>")


def _jsonable(value: object) -> int | float | bool | str:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat()
    raise TypeError(f"cannot store {type(value).__name__} in meta.json")


def latency_histogram(latency_s: np.ndarray) -> HdrHistogram:
    """An HdrHistogram (1 us to 1 h, 3 significant digits) of latencies given in seconds.

    Values are first rounded down to their bucket's lowest equivalent value in numpy and
    recorded with counts, which gives the same histogram as recording them one by one, fast
    enough for a simulated day of millions of requests.
    """
    hist = HdrHistogram(1, _HIST_MAX_US, 3)
    us = np.clip(np.rint(np.asarray(latency_s, dtype=np.float64) * 1e6), 1, _HIST_MAX_US).astype(np.int64)
    # 3 significant digits: 2048 sub-buckets, so values in [2^k, 2^(k+1)) share units of 2^(k-10).
    shift = np.maximum(0, np.floor(np.log2(us)).astype(np.int64) - 10)
    values, counts = np.unique((us >> shift) << shift, return_counts=True)
    for value, count in zip(values.tolist(), counts.tolist()):
        hist.record_value(value, count)
    return hist


def percentile(values: ArrayLike, q: float | Sequence[float]) -> float | np.ndarray:
    """The `q`th percentile(s) of raw samples, interpolated linearly between them (numpy's default); NaN
    for no samples.

    For the samples that are not a whole run: a lab's timed calls, the requests of one window or one
    peak. A run's own percentiles come from its HdrHistogram (`Result.summary`), which agrees with this
    within its 3 significant digits on the same requests, but rounds below a microsecond.
    """
    samples = np.asarray(values, dtype=float)
    if samples.size == 0:
        return np.full(np.shape(q), np.nan) if np.ndim(q) else float("nan")
    found = np.percentile(samples, q)
    return found if np.ndim(q) else float(found)


def percentile_per_window(t_s: pd.Series, values: pd.Series, window_s: float, q: float,
                          windows: int | None = None) -> pd.Series:
    """The `q`th percentile of `values` in each `window_s`-long window of their times `t_s`, indexed by
    the window's start (s): `windows` of them, by default up to the last with a sample; NaN where empty."""
    window = (t_s // window_s).astype(int)
    if windows is None:
        windows = int(window.max()) + 1 if len(window) else 0
    found = values.groupby(window).quantile(q / 100).reindex(range(windows))
    found.index = found.index * window_s
    return found


def _summarize(result: Result) -> dict:
    frame, meta = result.frame, result.meta
    ok = result.ok
    open_loop = meta.get("mode", "open") == "open"
    hist = latency_histogram(frame.loc[ok, "latency_s"].to_numpy())
    ms = lambda us: float(us) / 1000.0  # noqa: E731
    latency = {key: ms(hist.get_value_at_percentile(p)) if hist.total_count else float("nan")
               for key, p in PERCENTILES.items()}
    latency["max"] = ms(hist.get_max_value()) if hist.total_count else float("nan")
    latency["mean"] = ms(hist.get_mean_value()) if hist.total_count else float("nan")

    lag = (frame["sent_s"] - frame["intended_s"]).dropna().to_numpy() * 1000.0
    lag_stats = {"lag_p50": 0.0, "lag_p99": 0.0, "lag_max": 0.0}
    if open_loop and len(lag):
        lag_stats = {"lag_p50": percentile(lag, 50), "lag_p99": percentile(lag, 99),
                     "lag_max": float(lag.max())}

    failed = frame.loc[~ok]
    by_status = {int(k): int(v) for k, v in failed["status"].value_counts().sort_index().items()}
    examples = {int(k): str(group.mode().iloc[0])[:160] for k, group in failed.groupby("status")["error"]
                if group.notna().any()}
    not_sent = int(failed["error"].str.startswith(_NOT_SENT, na=False).sum())
    duration = meta.get("duration_s") or result.duration_s
    cpu = float(meta.get("client_cpu", 0.0))
    warnings, limited = _checks(lag_stats["lag_p99"], cpu, not_sent, len(failed), len(frame), meta)
    return {
        **latency,
        "requests": len(frame),
        "offered_rate": _offered_rate(meta, len(frame), duration) if open_loop and duration else float("nan"),
        "achieved_rate": result.ok_count / result.duration_s if result.duration_s else 0.0,
        "ok": result.ok_count,
        "errors": len(failed),
        "errors_by_status": by_status,
        "error_examples": examples,
        **lag_stats,
        "client_cpu": cpu,
        "generator_limited": limited,
        "warnings": warnings,
    }


def _offered_rate(meta: dict, requests: int, duration: float) -> float:
    """The rate the schedule offered: its own mean rate when it has one (random arrivals scatter
    around it, so the count sent would make every Poisson run's rate a slightly different number),
    else the requests scheduled per second."""
    planned = (meta.get("schedule") or {}).get("rate")
    return float(planned) if planned else requests / duration


def _checks(lag_p99: float, cpu: float, not_sent: int, errors: int, total: int, meta: dict) -> tuple[list[str], bool]:
    """Say when the generator (not the server) limited the result, and when requests failed."""
    warnings = []
    if lag_p99 > LAG_WARN_MS:
        warnings.append(f"generator fell behind its schedule: send lag p99 {lag_p99:.1f} ms > {LAG_WARN_MS:g} ms; "
                        "latencies include this lag (close other busy programs, or use more generator processes)")
    if cpu > CPU_WARN:
        workers = meta.get("workers", 1)
        warnings.append(f"generator process used {cpu:.0%} of a CPU core: the client may be the bottleneck "
                        f"(workers={workers}; try workers={workers + 1} if cores are free)")
    if not_sent:
        warnings.append(f"{not_sent} requests were not sent because max_inflight={meta.get('max_inflight')} "
                        "answers were already awaited: the server is far behind (or raise max_inflight)")
    limited = bool(warnings)
    if errors:
        warnings.append(f"{errors} of {total} requests failed (see errors_by_status; status 0 = no HTTP answer); "
                        "latency percentiles cover successful requests only")
    return warnings, limited


def format_summary(summary: dict, title: str = "") -> str:
    """A readable plain-text table of a summary, for the terminal ('-' where a figure does not apply)."""
    closed = np.isnan(summary["offered_rate"])

    def cell(value: float | None, width: int, digits: int = 2) -> str:
        return f"{'-':>{width}}" if value is None or np.isnan(value) else f"{value:>{width}.{digits}f}"

    names = ["p50", "p90", "p95", "p99", "p999", "max"]
    lag = [None] * 3 if closed else [summary["lag_p50"], summary["lag_p99"], summary["lag_max"]]
    rows = [
        title,
        "latency (ms)  " + "  ".join(f"{k.replace('p999', 'p99.9'):>7}" for k in names),
        "              " + "  ".join(cell(summary[k], 7) for k in names),
        "",
        f"{'requests':>10} {'ok':>8} {'errors':>8} {'offered/s':>10} {'achieved/s':>11} "
        f"{'lag p50 ms':>11} {'lag p99 ms':>11} {'lag max ms':>11}",
        f"{summary['requests']:>10} {summary['ok']:>8} {summary['errors']:>8} {cell(summary['offered_rate'], 10, 1)} "
        f"{cell(summary['achieved_rate'], 11, 1)} " + " ".join(cell(v, 11) for v in lag),
    ]
    for status, count in summary["errors_by_status"].items():
        example = summary.get("error_examples", {}).get(status)
        rows.append(f"failed with status {status}: {count}" + (f" (e.g. {example})" if example else ""))
    rows += [f"warning: {w}" for w in summary["warnings"]]
    return "\n".join(rows).strip("\n")
