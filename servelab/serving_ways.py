"""Lab 06's three ways of serving the same predictions, run and priced side by side.

Online serving is a load run through the cluster (servelab.load); this module adds the other two:
a batch Job and an edge device. Neither backend runs Jobs, and an edge device is a CPU budget, not
a server, so both are processes started here, held to a CPU limit with the same cgroups the local
backend gives a pod (where this machine allows it; every run says whether it was held).
`serving_ways` then prices each way by its own rule.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import yaml

from servelab import repo
from servelab.backends.manifests import container

BATCH_JOB_FILE = "cluster/batch-scoring-job.yaml"
_EDGE_SCRIPT = """
import json, sys, time
import numpy as np
from servelab import models
model = models.Model(sys.argv[1])
row = np.asarray([models.EXAMPLE_ROW], np.float32)
model.predict(row)
print("loaded", flush=True)
sys.stdin.readline()
times, cpu = [], time.process_time()
for _ in range(int(sys.argv[2])):
    start = time.perf_counter()
    model.predict(row)
    times.append(time.perf_counter() - start)
print(json.dumps({"seconds": times, "cpu_s": time.process_time() - cpu}), flush=True)
"""


@dataclass(frozen=True)
class ProcessRun:
    """A process run for a lab (a batch Job, an edge device): its output, wall and CPU seconds,
    and whether it was held to the CPU limit it was given (`note` says why not)."""

    output: str
    seconds: float
    cpu_s: float
    cpu_limit: float | None
    limit_enforced: bool
    note: str


def _cpu_group(pid: int, cpu: float | None, name: str):
    """Put process `pid` in a cgroup limited to `cpu` cores, as the local backend does for a pod.

    Returns (group or None, enforced, note). No limit asked, or none possible here: (None, False, why).
    """
    if cpu is None:
        return None, False, "no CPU limit asked for: this machine's full speed"
    from servelab.backends.local import cgroups

    support = cgroups.detect()
    if not support.usable:
        return None, False, f"CPU limit NOT enforced: {support.reason}"
    group = cgroups.PodGroup(support, f"{name}-{pid}", cpu, None)
    problem = group.add(pid)
    if problem:
        group.remove()
        return None, False, f"CPU limit NOT enforced: {problem}"
    return group, True, f"held to {cpu:g} CPU by a cgroup, as a pod's limit would be"


def _start(argv: list[str]) -> subprocess.Popen:
    from servelab.server.process import die_with_parent

    parent = os.getpid()
    return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, preexec_fn=lambda: die_with_parent(parent))


def _finish(process: subprocess.Popen, group) -> tuple[str, float]:
    """Read the rest of the output, reap the process and return (output, CPU seconds it used)."""
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if group is not None:
        group.remove()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(process.args[:5])} ... exited with {process.returncode}:\n{output}")
    return output, usage.ru_utime + usage.ru_stime


def batch_job(*, model: str, rows: int, batch_size: int) -> dict:
    """The batch Job manifest (cluster/batch-scoring-job.yaml), scoring `rows` synthetic rows with `model`."""
    manifest = yaml.safe_load(repo.path(BATCH_JOB_FILE).read_text())
    args = container(manifest)["args"]
    for flag, value in (("--model", model), ("--rows", rows), ("--batch-size", batch_size)):
        args[args.index(flag) + 1] = str(value)
    return manifest


def run_job(manifest: dict) -> ProcessRun:
    """Run a Job's container (`servelab score ...`) here as one process, from start to exit.

    Neither backend runs Jobs, so the lab runs the container's command itself, held to the
    container's CPU limit where this machine allows, and times all of it: start-up and model
    load are part of what a cluster bills a Job's pod for.
    """
    from servelab.backends.manifests import cpu_cores

    spec = container(manifest)
    started = time.perf_counter()
    process = _start([sys.executable, "-m", "servelab.cli", *map(str, spec["args"])])
    limit = cpu_cores(spec.get("resources", {}).get("limits", {}).get("cpu"))
    group, enforced, note = _cpu_group(process.pid, limit, manifest["metadata"]["name"])
    output, cpu_s = _finish(process, group)
    return ProcessRun(output.strip(), time.perf_counter() - started, cpu_s, limit, enforced, note)


def job_pod(manifest: dict, run: ProcessRun):
    """The Job's pod as `cost.PodUsage`: its requests, for the time it ran, and the CPU it used."""
    from servelab import cost
    from servelab.backends.manifests import cpu_cores, memory_bytes

    requests = container(manifest)["resources"]["requests"]
    return cost.PodUsage(manifest["metadata"]["name"], 0.0, run.seconds, cpu_cores(requests["cpu"]),
                         memory_bytes(requests["memory"]) / 2**30, cpu_used_core_s=run.cpu_s)


@dataclass(frozen=True)
class EdgeRun:
    """Predictions made one row at a time in a process of their own, as an app on a device makes them."""

    model: str
    seconds: np.ndarray  # each prediction's wall time, in order
    process: ProcessRun


def predict_on_device(model: str, n: int, *, cpu: float | None = None) -> EdgeRun:
    """`n` single-row predictions back to back with `models.Model` in-process, in a process held to
    `cpu` cores (a small device's budget) or, with `cpu=None`, at this machine's full speed.

    The limit is applied after the model is loaded, so only the predictions pay for it; a device
    would load its model once, at start.
    """
    process = _start([sys.executable, "-c", _EDGE_SCRIPT, model, str(n)])
    if process.stdout.readline().strip() != "loaded":
        _finish(process, None)  # raises with what the process said
    group, enforced, note = _cpu_group(process.pid, cpu, f"device-{model}")
    started = time.perf_counter()
    process.stdin.write("go\n")
    process.stdin.close()
    output, _ = _finish(process, group)
    measured = json.loads(output)
    run = ProcessRun("", time.perf_counter() - started, measured["cpu_s"], cpu, enforced, note)
    return EdgeRun(model, np.asarray(measured["seconds"]), run)


def edge_table(runs: dict[str, EdgeRun], slo_ms: float) -> pd.DataFrame:
    """Per device run: per-prediction percentiles and mean (ms), predictions per second back to back,
    the share within `slo_ms`, and whether the CPU limit was enforced."""
    rows = {}
    for name, run in runs.items():
        ms = run.seconds * 1000
        p50, p95, p99 = np.percentile(ms, [50, 95, 99])
        rows[name] = {"model": run.model, "CPU limit": run.process.cpu_limit, "limit enforced": run.process.limit_enforced,
                      "p50 (ms)": p50, "p95 (ms)": p95, "p99 (ms)": p99, "mean (ms)": ms.mean(),
                      "predictions/s": len(ms) / run.seconds.sum(), f"within {slo_ms:g} ms (%)": 100 * (ms <= slo_ms).mean()}
    return pd.DataFrame.from_dict(rows, orient="index")


def serving_ways(online, job: ProcessRun, job_pod_usage, edge: EdgeRun, price) -> pd.DataFrame:
    """The same predictions served online, by a batch Job and at the edge: latency, throughput and cost.

    Each way is priced by its own rule (servelab.cost's max(request, usage) x hours x price):
    online pays for its replicas' requests for the whole run, busy or idle; the batch Job for
    its pod's requests only while it runs; the edge costs the cloud nothing.
    """
    from servelab import cost

    served = online.summary()
    online_cost, job_cost = cost.cost_of_result(online, price), cost.cost([job_pod_usage], price, _scored_rows(job))
    edge_ms = edge.seconds * 1000
    rows = {
        "online (HTTP to the Service)": {
            "predictions": served["ok"], "p50 (ms)": served["p50"], "p95 (ms)": served["p95"],
            "time to last result (s)": np.nan, "predictions/s": served["achieved_rate"],
            "$ for the run": online_cost.dollars, "$ per 1M predictions": online_cost.per_million,
            "idle share": online_cost.idle_share, "who pays for what": "the replica's requests, for the whole run"},
        "batch (a Job, all rows at once)": {
            "predictions": job_cost.predictions_ok, "p50 (ms)": np.nan, "p95 (ms)": np.nan,
            "time to last result (s)": job.seconds, "predictions/s": job_cost.predictions_ok / job.seconds,
            "$ for the run": job_cost.dollars, "$ per 1M predictions": job_cost.per_million,
            "idle share": job_cost.idle_share, "who pays for what": "the Job pod's requests, only while it runs"},
        "edge (in-process, one row at a time)": {
            "predictions": len(edge_ms), "p50 (ms)": np.percentile(edge_ms, 50), "p95 (ms)": np.percentile(edge_ms, 95),
            "time to last result (s)": np.nan, "predictions/s": len(edge_ms) / edge.seconds.sum(),
            "$ for the run": 0.0, "$ per 1M predictions": 0.0, "idle share": np.nan,
            "who pays for what": "nothing in the cloud: the user's device"},
    }
    return pd.DataFrame.from_dict(rows, orient="index")


def _scored_rows(job: ProcessRun) -> int:
    """Rows a `servelab score` run reports in its output line ("scored N rows with ...")."""
    match = re.search(r"scored (\d+) rows", job.output)
    if match is None:
        raise ValueError(f"no 'scored N rows' line in the job's output: {job.output!r}")
    return int(match.group(1))


def rows_per_s(job: ProcessRun) -> float:
    """The scoring speed a `servelab score` run reports (its model time only, start-up excluded)."""
    match = re.search(r"([\d,]+) rows/s", job.output)
    if match is None:
        raise ValueError(f"no 'N rows/s' in the job's output: {job.output!r}")
    return float(match.group(1).replace(",", ""))
