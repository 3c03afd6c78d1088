"""Fixtures for the quiz tests: saved load-test results with known answers, and a real grader process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parent.parent
BANKS = REPO / "quizzes"
DURATION_S = 2.0
SLO_MS = 50.0
# rate -> (lowest, highest latency in s, evenly spaced; failed requests). The p95 of
# evenly spaced values is about lowest + 0.95 * (highest - lowest) (to HdrHistogram's 3 digits).
SWEEP = {50: (0.004, 0.024, 0), 100: (0.010, 0.030, 0), 200: (0.012, 0.040, 1), 400: (0.030, 0.400, 0)}
P95_AT_100_MS = 29.0  # 10 + 0.95 * 20: the highest rate within the SLO is 100 (200 has a failure)


def save_run(directory: Path, rate: float, low: float, high: float, failed: int = 0) -> Path:
    """A saved result as the load package writes it: requests.csv + meta.json."""
    n = int(rate * DURATION_S)
    status = np.full(n, 200)
    status[:failed] = 503
    frame = pd.DataFrame({
        "intended_s": np.arange(n) / rate,
        "sent_s": np.arange(n) / rate,
        "latency_s": np.linspace(low, high, n),
        "service_s": np.linspace(low, high, n),
        "status": status,
        "bytes": 30,
        "replica": "pod-a",
        "error": "",
    })
    directory.mkdir(parents=True, exist_ok=True)
    frame.to_csv(directory / "requests.csv", index=False)
    (directory / "meta.json").write_text(json.dumps({"duration_s": DURATION_S, "mode": "open"}))
    return directory


@pytest.fixture
def results_root(tmp_path: Path) -> Path:
    """A results root holding the 03-load sweep the computed questions read."""
    root = tmp_path / "results"
    for rate, (low, high, failed) in SWEEP.items():
        save_run(root / "03-load" / "sweep" / f"rate-{rate}", rate, low, high, failed)
    return root


def run_cli(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    """Run the `servelab` command line in this process: (exit code, stdout, stderr)."""
    from servelab.cli import main

    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def servelab(*args: str, env: dict | None = None, input: str | None = None) -> subprocess.CompletedProcess:
    """Run the real `servelab` command line in a new process (as `python -m servelab.cli`)."""
    return subprocess.run(
        [sys.executable, "-m", "servelab.cli", *args], capture_output=True, text=True, input=input,
        env={**os.environ, **(env or {})}, timeout=120, cwd=REPO,
    )


class GraderProcess:
    """`servelab grader serve` on a free loopback port, stopped by `stop()`."""

    def __init__(self, *args: str):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "servelab.cli", "grader", "serve", "--port", "0", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, start_new_session=True,
        )
        line = self.process.stdout.readline()  # printed once the socket is bound
        if "listening on" not in line:
            self.stop()
            raise RuntimeError(f"grader did not start: {line!r} {self.process.stderr.read()}")
        self.url = line.rsplit(" ", 1)[1].strip()

    def stop(self) -> str:
        """Stop the process and return what it wrote to stderr."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.stderr.read()


def write_roster(path: Path, students: list[str]) -> Path:
    path.write_text("student,name\n" + "".join(f"{s},Student {s}\n" for s in students))
    return path


def read_tokens(path: Path) -> dict[str, str]:
    return dict(line.split(",") for line in path.read_text().splitlines()[1:])
