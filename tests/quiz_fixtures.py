"""Fixtures for the quiz tests: saved load-test results with known answers, and a real grader process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
BANKS = REPO / "quizzes"
DURATION_S = 2.0
SLO_MS = 50.0
# rate -> (lowest, highest latency in s, evenly spaced; failed requests). The p95 of
# evenly spaced values is about lowest + 0.95 * (highest - lowest) (to HdrHistogram's 3 digits).
SWEEP = {50: (0.004, 0.024, 0), 100: (0.010, 0.030, 0), 200: (0.012, 0.040, 1), 400: (0.030, 0.400, 0)}
P95_AT_100_MS = 29.0  # 10 + 0.95 * 20: the highest rate within the SLO is 100 (200 has a failure)


def save_run(directory: Path, rate: float, low: float, high: float, failed: int = 0, **recorded: Any) -> Path:
    """A saved result as the load package writes it (requests.csv + meta.json), on one priced pod; `recorded`
    adds what a cluster records in the metadata (`pods`, dicts shaped like `cost.PodUsage`, `cpu_limit_cores`)."""
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
        "infer_s": np.linspace(low, high, n) / 4,
    })
    meta = {"duration_s": DURATION_S, "mode": "open", "schedule": {"kind": "poisson", "rate": rate, "duration": DURATION_S},
            "replicas": 1, "cpu_request_cores": 0.5, "memory_request_gib": 0.25, **recorded}
    directory.mkdir(parents=True, exist_ok=True)
    frame.to_csv(directory / "requests.csv", index=False)
    (directory / "meta.json").write_text(json.dumps(meta))
    return directory


def save_sweep(directory: Path, runs: dict[float, tuple[float, float, int]] = SWEEP) -> Path:
    """A saved sweep as `Sweep.save` lays it out: run-00, run-01, ... in the order of the rates."""
    for i, (rate, (low, high, failed)) in enumerate(sorted(runs.items())):
        save_run(directory / f"run-{i:02d}", rate, low, high, failed)
    return directory


@pytest.fixture
def results_root(tmp_path: Path) -> Path:
    """A results root holding the 03-load sweep the computed questions read."""
    root = tmp_path / "results"
    save_sweep(root / "03-load" / "sweep")
    return root


def simulated(schedule, replicas: int | None = None, cpu: str = "500m", hpa_manifest: Path | None = None):
    """A run of `schedule` from the simulator: a real Result with pods, costs and a schedule in its meta."""
    from servelab import sim
    from servelab.core import hpa

    service = sim.ServiceTimes.empirical(np.linspace(0.002, 0.006, 50))
    if hpa_manifest is not None:
        spec = hpa.HPASpec.from_manifest(yaml.safe_load(hpa_manifest.read_text()))
        policy = sim.Autoscaled(spec, sync_period_s=1.0)
    else:
        policy = sim.Static(replicas or 1)
    cores = float(cpu.removesuffix("m")) / 1000 if cpu.endswith("m") else float(cpu)
    return sim.simulate(schedule, service, policy=policy, pod=sim.PodSize(cpu_request_cores=cores, cpu_limit_cores=cores))


def _simulated_sweep(directory: Path, rates: list[float], replicas: int = 1) -> None:
    from servelab import load

    load.Sweep([simulated(load.Poisson(rate, 3.0), replicas) for rate in rates]).save(directory)


def _start_up_table(path: Path) -> None:
    """Lab 02's start-up table from a timeline with one pod, saved as the lab saves it."""
    from servelab.analysis import timelines
    from servelab.backends import base

    events = [(0.0, base.POD_CREATED), (0.4, base.POD_RUNNING), (2.9, base.POD_READY)]
    timeline = pd.DataFrame([{"t_s": t, "unix_s": 1e9 + t, "kind": kind, "object": "pod/model-serving-abc12",
                              "message": ""} for t, kind in events])
    path.parent.mkdir(parents=True, exist_ok=True)
    timelines.pod_startup(timeline).to_csv(path)


def lab_results(root: Path) -> Path:
    """A results root laid out as the labs save it (the save cells of labs 00-07), from simulated runs."""
    from servelab import load
    from servelab.analysis import compare
    from servelab.core import cost

    hpa_manifest = REPO / "cluster" / "model-serving-hpa.yaml"
    (root / "00-orientation").mkdir(parents=True)
    np.savetxt(root / "00-orientation" / "in-process-us.txt", np.r_[np.linspace(20, 30, 95), np.linspace(60, 200, 5)])
    save_run(root / "01-server" / "one-by-one", 100, 0.001, 0.002)
    _start_up_table(root / "02-deploy" / "startup.csv")
    pods = simulated(load.Poisson(20, 3.0), 2).meta["pods"]
    compare.pod_cost_table(pods, cost.load_pricing()).to_csv(root / "02-deploy" / "pod-cost.csv")
    save_sweep(root / "03-load" / "sweep")
    save_run(root / "03-load" / "open-loop", 100, 0.001, 0.400)
    save_run(root / "03-load" / "closed-loop", 100, 0.001, 0.004)
    for n in (1, 2):
        _simulated_sweep(root / "04-scale" / f"replicas-{n}", [50, 150, 300], n)
    step = load.Random(load.Step(steps=[(2, 20), (8, 300), (6, 20)]), seed=1)
    for name, replicas in (("hpa", None), ("static-one", 1), ("static-most", 4)):
        simulated(step, replicas, hpa_manifest=None if replicas else hpa_manifest).save(root / "05-autoscale" / name)
    delays = pd.Series({"step up → HPA scales up (s)": 1.2, "HPA scales up → new pod ready (s)": 3.4,
                        "step down → HPA scales down (s)": 30.5})
    delays.rename("seconds").to_csv(root / "05-autoscale" / "delays.csv")
    simulated(load.Poisson(60, 3.0)).save(root / "06-online-batch-edge" / "online")
    _simulated_sweep(root / "06-online-batch-edge" / "no-batching", [20, 300])
    _simulated_sweep(root / "06-online-batch-edge" / "batching", [20, 300])
    for name, cpu in (("small-pod", "500m"), ("big-pod", "2")):
        simulated(load.Poisson(20, 3.0), cpu=cpu).save(root / "06-online-batch-edge" / name)
        simulated(load.Poisson(300, 3.0), cpu=cpu).save(root / "06-online-batch-edge" / f"{name}-high-traffic")
    day = load.Random(load.Diurnal(mean_rate=100, peak_to_trough=6, duration=20, period=20), seed=7)
    simulated(day, hpa_manifest=hpa_manifest).save(root / "07-capstone" / "live")
    simulated(day, 2).save(root / "07-capstone" / "predicted")
    pd.DataFrame({"$ per day": [0.51, 0.81, 0.71]}, index=pd.Index(
        ["static, 1 pod", "HPA, 1 to 4 pods", "HPA + nightly batch (30%)"], name="architecture")
    ).to_csv(root / "07-capstone" / "day.csv")
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
