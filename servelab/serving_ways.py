"""Lab 06's three ways of serving the same predictions, run and priced side by side.

Online serving is a load run through the cluster (servelab.load); this module adds the other two:
a batch Job and an edge device. Neither backend runs Jobs, and an edge device is a CPU budget, not
a server, so both are processes started here; `region_service` adds online from farther away. The Job is held to its container's limits by the same
ladder that holds a pod (servelab.limits: a cgroup, a user scope or the userspace enforcer, as this
machine allows; every run says which, or why none). The device is a uniformly slower CPU, emulated
by pacing its predictions (servelab.limits.slower_cpu). `serving_ways` then prices each way by its own rule,
the device by its price amortised over its life (servelab.core.cost.Device).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import yaml

from servelab import limits
from servelab.core import processes, repo
from servelab.core.manifests import container
from servelab.limits.slower_cpu import SlowerCpu

if TYPE_CHECKING:
    from servelab.backends.base import Cluster
    from servelab.core.cost import Device, PodUsage, Price
    from servelab.core.result import Result

BATCH_JOB_FILE = "cluster/batch-scoring-job.yaml"
SERVICE_FILE = "cluster/model-serving-service.yaml"
_EDGE_SCRIPT = """
import contextlib, json, sys, time
import numpy as np
from servelab.core import models
from servelab.limits.slower_cpu import SlowerCpu
model = models.Model(sys.argv[1])
row = np.asarray([models.EXAMPLE_ROW], np.float32)
model.predict(row)
share = float(sys.argv[3])
device = SlowerCpu(share) if share < 1 else None
call_cpu_s = device.calibrate(lambda: model.predict(row)) if device else None
print("loaded", flush=True)
sys.stdin.readline()
times, cpu = [], time.process_time()
for _ in range(int(sys.argv[2])):
    start = time.perf_counter()
    with device or contextlib.nullcontext():
        model.predict(row)
    times.append(time.perf_counter() - start)
print(json.dumps({"seconds": times, "cpu_s": time.process_time() - cpu, "call_cpu_s": call_cpu_s}), flush=True)
"""


@dataclass(frozen=True)
class ProcessRun:
    """A process run for a lab (a batch Job, an edge device): its output, wall and CPU seconds,
    and what held it to the CPU limit it was given: `limit_enforced` is the rung ("cgroup-v1",
    "user-scope", "userspace"), "paced" for an emulated slower CPU, or False (`note` says why)."""

    output: str
    seconds: float
    cpu_s: float
    cpu_limit: float | None
    limit_enforced: str | bool
    note: str


def _start(argv: list[str]) -> subprocess.Popen:
    """Start `argv` in a session of its own (so a limit acts on its process group only), tied to our life."""
    return processes.start(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(process: subprocess.Popen) -> tuple[str, float]:
    """Read the rest of the output, reap the process and return (output, CPU seconds it used)."""
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
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
    container's limits by the rung a pod would get here, and times all of it: start-up and model
    load are part of what a cluster bills a Job's pod for. Its CPU seconds are the kernel's count
    for the exited process, the same on every rung.
    """
    from servelab.core.manifests import cpu_cores, memory_bytes

    spec = container(manifest)
    wanted = spec.get("resources", {}).get("limits", {})
    cpu, memory = cpu_cores(wanted.get("cpu")), memory_bytes(wanted["memory"]) if "memory" in wanted else None
    ladder = limits.detect()
    try:
        held = ladder.hold(manifest["metadata"]["name"], cpu, memory)
        started = time.perf_counter()
        process = _start(held.command([sys.executable, "-m", "servelab.cli", *map(str, spec["args"])]))
        held.add(process.pid)
        try:
            output, cpu_s = _finish(process)
        finally:
            held.remove()
    finally:
        ladder.close()
    enforced, note = _held_note(held, cpu, ladder)
    return ProcessRun(output.strip(), time.perf_counter() - started, cpu_s, cpu, enforced, note)


def _held_note(held: limits.Held, cpu: float | None, ladder: limits.Ladder) -> tuple[str | bool, str]:
    """(what held the process, a sentence saying so) for a run's record."""
    if cpu is None:
        return False, "no CPU limit asked for: this machine's full speed"
    if not held.held:
        return False, f"CPU limit NOT enforced: {held.problem}"
    return held.rung, f"held to {cpu:g} CPU by the {held.rung} rung, as a pod's limit would be: {limits.MEANING[held.rung]}"


def job_pod(manifest: dict, run: ProcessRun) -> PodUsage:
    """The Job's pod as `cost.PodUsage`: its requests, for the time it ran, and the CPU it used."""
    from servelab.core import cost
    from servelab.core.manifests import cpu_cores, memory_bytes

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
    """`n` single-row predictions back to back with `models.Model` in-process, in a process of its own
    that runs as a CPU `cpu` times as fast as one of this machine's cores (a small device) or, with
    `cpu=None`, at this machine's full speed.

    The device is emulated by pacing (servelab.limits.slower_cpu), not by a CPU quota: every prediction
    lasts 1/`cpu` times what it costs this machine back to back (measured first, in the device
    process), as on a slower CPU; a quota would run most predictions at full speed and stall one
    per period. The model loads at full speed, before timing starts: a device would load its model
    once, at start.
    """
    device = SlowerCpu(1.0 if cpu is None else cpu)
    process = _start([sys.executable, "-c", _EDGE_SCRIPT, model, str(n), str(device.share)])
    if process.stdout.readline().strip() != "loaded":
        _finish(process)  # raises with what the process said
    started = time.perf_counter()
    process.stdin.write("go\n")
    process.stdin.close()
    output, _ = _finish(process)
    measured = json.loads(output)
    device.call_cpu_s = measured["call_cpu_s"]
    if cpu is None:
        enforced, note = False, "no CPU limit asked for: this machine's full speed"
    else:
        enforced, note = "paced", device.describe()
    run = ProcessRun("", time.perf_counter() - started, measured["cpu_s"], cpu, enforced, note)
    return EdgeRun(model, np.asarray(measured["seconds"]), run)


def edge_table(runs: dict[str, EdgeRun], slo_ms: float) -> pd.DataFrame:
    """Per device run: per-prediction percentiles and mean (ms), predictions per second back to back,
    the share within `slo_ms`, how the device's speed was set (`limit enforced`: "paced" for a slower
    CPU) and the CPU each prediction took on this machine (a paced one waits (1/share - 1) times that)."""
    rows = {}
    for name, run in runs.items():
        ms = run.seconds * 1000
        p50, p95, p99 = np.percentile(ms, [50, 95, 99])
        rows[name] = {"model": run.model, "CPU limit": run.process.cpu_limit, "limit enforced": run.process.limit_enforced,
                      "p50 (ms)": p50, "p95 (ms)": p95, "p99 (ms)": p99, "mean (ms)": ms.mean(),
                      "predictions/s": len(ms) / run.seconds.sum(), f"within {slo_ms:g} ms (%)": 100 * (ms <= slo_ms).mean(),
                      "CPU per prediction (ms)": 1000 * run.process.cpu_s / len(ms)}
    return pd.DataFrame.from_dict(rows, orient="index")


def region_service(name: str, round_trip_ms: float, jitter_ms: float = 0.0, *, port: int) -> dict:
    """The lesson's Service under another `name` and `port`, the same pods seen from farther away: the
    local backend adds `round_trip_ms` (+- `jitter_ms`) to every request through it
    (servelab/backends/local/proxy/round_trip.py). Kubernetes ignores the annotation, so on a real
    cluster the distance must be real: the annotation is local backend only."""
    from servelab.backends.local.proxy.round_trip import ANNOTATION, JITTER_ANNOTATION

    manifest = yaml.safe_load(repo.path(SERVICE_FILE).read_text())
    manifest["metadata"]["name"] = name
    manifest["metadata"]["annotations"] = {ANNOTATION: f"{round_trip_ms:g}ms", JITTER_ANNOTATION: f"{jitter_ms:g}ms"}
    ports = manifest["spec"]["ports"][0]
    ports["port"], ports["nodePort"] = port, ports["nodePort"] + port - ports["port"]
    return manifest


def serve_from_afar(cluster: Cluster, name: str, round_trip_ms: float, jitter_ms: float = 0.0, *, port: int) -> str:
    """Apply `region_service` and return its URL. A local cluster that puts every Service on one port
    (`lab.connect(service_port=8501)`) puts this one on a free port instead, beside the lesson's; on
    kube the Service is created but adds no round trip, and this says so."""
    fixed = cluster.backend == "local" and getattr(cluster, "service_port", None)
    if fixed:
        cluster.service_port = 0
    try:
        cluster.apply(region_service(name, round_trip_ms, jitter_ms, port=port))
    finally:
        if fixed:
            cluster.service_port = fixed
    if cluster.backend != "local":
        print(f"service {name}: the added round trip is local backend only; on {cluster.backend} this Service adds "
              "none (use a client in another region, or tc netem on the client machine)")
    return cluster.service_url(name)


def serving_ways(online: dict[str, Result], job: ProcessRun, job_pod_usage: PodUsage, edge: EdgeRun, price: Price,
                 device: Device, per_day: float) -> pd.DataFrame:
    """The same predictions served online, by a batch Job and on a device: latency, throughput and cost.

    `online` maps a name to a load run through a Service, nearest first ("same hop", "near region",
    ...); each online row says the round trip its Service added. Each way is priced by its own
    rule: online pays for its replicas' requests for the whole run, busy or idle (servelab.core.cost's
    max(request, usage) x hours x price); the batch Job for its pod's requests only while it runs;
    the edge for the `device`, its price amortised over its life at `per_day` predictions a day.
    Rows: the first online run, batch, edge, then the other online runs (the plot reads the first two).
    """
    from servelab.core import cost

    (first, *others) = online.items()
    job_cost = cost.cost([job_pod_usage], price, _scored_rows(job))
    rows = {f"online, {first[0]}": _online_row(first[1], price)}
    rows["batch (a Job, all rows at once)"] = {
        "predictions": job_cost.predictions_ok, "p50 (ms)": np.nan, "p95 (ms)": np.nan,
        "time to last result (s)": job.seconds, "predictions/s": job_cost.predictions_ok / job.seconds,
        "round trip added (ms)": np.nan, "$ for the run": job_cost.dollars, "$ per 1M predictions": job_cost.per_million,
        "idle share": job_cost.idle_share, "who pays for what": "the Job pod's requests, only while it runs"}
    rows["edge (on the device, no network)"] = _edge_row(edge, device, per_day)
    rows.update({f"online, {name}": _online_row(run, price) for name, run in others})
    return pd.DataFrame.from_dict(rows, orient="index")


def _online_row(run: Result, price: Price) -> dict:
    """An online run's row: its latency, the round trip its Service added (NaN where the backend
    does not record one) and its replicas' cost."""
    from servelab.core import cost

    served, bill = run.summary(), cost.cost_of_result(run, price)
    added = run.meta.get("added_round_trip_ms")
    return {"predictions": served["ok"], "p50 (ms)": served["p50"], "p95 (ms)": served["p95"],
            "time to last result (s)": np.nan, "predictions/s": served["achieved_rate"],
            "round trip added (ms)": np.nan if added is None else added, "$ for the run": bill.dollars,
            "$ per 1M predictions": bill.per_million, "idle share": bill.idle_share,
            "who pays for what": "the replica's requests, for the whole run"}


def _edge_row(edge: EdgeRun, device: Device, per_day: float) -> dict:
    """The device's row: each prediction's time in-process, and its share of the device's price."""
    ms = edge.seconds * 1000
    per_million = device.per_million(per_day)
    return {"predictions": len(ms), "p50 (ms)": np.percentile(ms, 50), "p95 (ms)": np.percentile(ms, 95),
            "time to last result (s)": np.nan, "predictions/s": len(ms) / edge.seconds.sum(),
            "round trip added (ms)": 0.0, "$ for the run": per_million * len(ms) / 1e6,
            "$ per 1M predictions": per_million, "idle share": np.nan,
            "who pays for what": f"the device: ${device.price_usd:g} over {device.life_years:g} years at "
                                 f"{per_day:,.0f} predictions a day"}


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
