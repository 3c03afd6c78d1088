"""`servelab score`: batch scoring, the third way to serve a model (beside online HTTP and edge).

A batch job has no request to answer quickly: it reads many rows, scores them in large batches
in-process and reports throughput. The same command runs on a laptop and as the Kubernetes Job in
cluster/batch-scoring-job.yaml, so a lab can compare rows per second and cost per million rows
with the online server's. Rows come from a CSV file (one row per line, the model's three feature
columns, an optional header) or are synthetic (seeded, so every run scores the same rows).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from servelab.core import models


@dataclass
class ScoreReport:
    """What one batch run did: rows, seconds of scoring, and the throughput that follows."""

    model: str
    rows: int
    batch_size: int
    seconds: float
    mean_probability: float

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")

    def line(self) -> str:
        return (f"scored {self.rows} rows with {self.model} in batches of {self.batch_size}: "
                f"{self.seconds:.3f} s, {self.rows_per_s:,.0f} rows/s, mean probability {self.mean_probability:.4f}")


def synthetic_rows(n: int, seed: int = 0) -> np.ndarray:
    """n plausible feature rows: km to ride (0-20), stops ahead (0-10), rain in mm/h (0-15)."""
    rng = np.random.default_rng(seed)
    scale = np.array([20.0, 10.0, 15.0], dtype=np.float32)
    return (rng.random((n, models.N_FEATURES), dtype=np.float32) * scale).astype(np.float32)


def read_csv_rows(path: str | Path) -> np.ndarray:
    """Feature rows from a CSV file; a first line that is not numbers is taken as a header."""
    with open(path, newline="") as handle:
        lines = [row for row in csv.reader(handle) if row]
    if lines and not _is_numeric(lines[0]):
        lines = lines[1:]
    return np.array(lines, dtype=np.float32).reshape(-1, models.N_FEATURES)


def _is_numeric(cells: list[str]) -> bool:
    try:
        [float(c) for c in cells]
    except ValueError:
        return False
    return True


def score(rows: np.ndarray, model: str = "tiny", batch_size: int = 1024, threads: int = 1) -> ScoreReport:
    """Score `rows` in batches of `batch_size`; the model is loaded before the clock starts."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    session = models.Model(model, threads=threads)
    total = 0.0
    started = time.perf_counter()
    for begin in range(0, len(rows), batch_size):
        total += float(np.sum(session.predict(rows[begin:begin + batch_size])))
    seconds = time.perf_counter() - started
    mean = total / len(rows) if len(rows) else float("nan")
    return ScoreReport(model, len(rows), batch_size, seconds, mean)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="tiny", choices=models.MODEL_NAMES)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--rows", type=int, default=100_000, help="number of synthetic rows (default 100000)")
    source.add_argument("--csv", type=Path, help="score the rows of this CSV file instead")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic rows")


def main(args: argparse.Namespace) -> int:
    if args.csv is not None and not args.csv.is_file():
        print(f"servelab score: no such CSV file: {args.csv}", file=sys.stderr)
        return 2
    rows = read_csv_rows(args.csv) if args.csv is not None else synthetic_rows(args.rows, args.seed)
    print(score(rows, args.model, args.batch_size, args.threads).line(), flush=True)
    return 0
