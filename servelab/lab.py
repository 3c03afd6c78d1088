"""What every lab notebook needs around its measurements: sizes, a cluster, and a clean exit.

- `params(quick=..., full=...)`: the lab's durations and rates. `SERVELAB_QUICK=1` (tests, CI)
  picks the short set; otherwise the full set, sized for a 2-core laptop.
- `connect()`, `serve()`: a cluster or a model server that is closed for you, in the lab's
  last cell (`cleanup()`) and again when the kernel shuts down, whichever comes first.
- `SERVELAB_BACKEND=local|kube` (read by `servelab.connect`) chooses the backend, so CI on kind
  runs the same notebooks unchanged.
- `ROOT`: the repository, where `cluster/` lives, so the lesson's `-f cluster/...` paths work.
"""

from __future__ import annotations

import atexit
import json
import os
import platform
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import psutil
import yaml

import servelab

if TYPE_CHECKING:
    from servelab.server import ServerProcess

QUICK = os.environ.get("SERVELAB_QUICK") == "1"
ROOT = Path(__file__).resolve().parents[1]
DEPLOYMENT_FILE = "cluster/model-serving-deployment.yaml"
HOURS_PER_MONTH = 730  # 8760 hours in a year / 12, the figure cloud price pages use
SATURATION_FACTOR = 2.0  # p95 this many times its floor counts as "turned up"

_open: list[Any] = []


def params(*, quick: dict[str, Any], full: dict[str, Any]) -> SimpleNamespace:
    """Pick the quick or full sizes, say which, and close anything an earlier run left open.

    Both dicts must have the same keys, so a lab reads the same names in either mode.
    """
    if quick.keys() != full.keys():
        raise ValueError(f"quick and full need the same keys; differ in {sorted(quick.keys() ^ full.keys())}")
    cleanup()  # a lab run again in the same kernel starts from nothing
    chosen = quick if QUICK else full
    mode = "quick (SERVELAB_QUICK=1: short runs for tests)" if QUICK else "full (sized for a 2-core laptop)"
    print(f"mode: {mode}")
    for key, value in chosen.items():
        print(f"  {key} = {value!r}")
    return SimpleNamespace(**chosen)


def track(thing: Any) -> Any:
    """Remember something with close() or stop() so `cleanup()` ends it; returns it unchanged."""
    if not (hasattr(thing, "close") or hasattr(thing, "stop")):
        raise TypeError(f"{type(thing).__name__} has neither close() nor stop(); nothing to clean up")
    _open.append(thing)
    return thing


def cleanup() -> None:
    """Close everything the lab started, newest first. Safe to call again: the second does nothing."""
    while _open:
        thing = _open.pop()
        stop = getattr(thing, "close", None) or getattr(thing, "stop")
        try:
            stop()
        except Exception as error:  # one failure must not leave the rest running
            print(f"cleanup: closing {type(thing).__name__} failed: {error}")
        else:
            print(f"cleanup: closed {type(thing).__name__}")


atexit.register(cleanup)


def connect(*, service_port: int | None = None, **kwargs: Any):
    """`servelab.connect()`, closed by `cleanup()` (it honours $SERVELAB_BACKEND=local|kube).

    `service_port` is where the local backend's Services listen (0: any free port, so a test run
    never collides with a lab left open); on kube, kind's port mapping fixes it at 8501.
    In IPython it also defines the `%kubectl` line magic on this cluster, so a cell can read
    `%kubectl get pods` exactly as the lesson does, on either backend.
    """
    from servelab.backends import connect as connect_backend

    cluster = track(connect_backend(**kwargs))
    if service_port is not None and cluster.backend == "local":
        cluster.service_port = service_port
    _define_kubectl_magic(cluster)
    return cluster


def _define_kubectl_magic(cluster) -> None:
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return

    def kubectl(line: str) -> None:
        cluster.kubectl(line)  # prints the table itself; returning it would print it twice

    shell.register_magic_function(kubectl, magic_kind="line", magic_name="kubectl")


def time_calls(call: Callable[[], Any], n: int) -> np.ndarray:
    """Seconds each of `n` back-to-back calls of `call` took (perf_counter; one warm-up call first)."""
    call()
    times = np.empty(n)
    for i in range(n):
        start = time.perf_counter()
        call()
        times[i] = time.perf_counter() - start
    return times


def environment(cluster) -> pd.DataFrame:
    """What the labs run on: one row per fact, with why it matters for the numbers you will see."""
    meta = cluster.run_metadata()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    rows = [
        ("Python", platform.python_version(), "the labs need 3.10 or newer"),
        ("servelab", servelab.__version__, "recorded with every saved run"),
        ("system", f"{platform.system()} {platform.machine()}", "which ways of holding a pod's CPU limit exist here"),
        ("cores usable", usable, "shared by the servers, the load generator and this notebook"),
        ("memory", f"{psutil.virtual_memory().total / 2**30:.1f} GiB", "each pod requests some of it"),
        ("backend", cluster.backend, "where the manifests in cluster/ run"),
        ("CPU limits enforced", meta.get("limits_enforced"),
         meta.get("limits_note") or "if False, a pod may use more CPU than its limit"),
        ("curl", shutil.which("curl") or "missing", "the lesson's requests are sent with it"),
    ]
    return pd.DataFrame(rows, columns=["what", "value", "why it matters"]).set_index("what")


def serve(**kwargs: Any) -> ServerProcess:
    """Start `servelab serve` (ServerProcess arguments), wait until ready; stopped by `cleanup()`."""
    from servelab.server import ServerProcess

    return track(ServerProcess(**kwargs).start())


def post_json(url: str, body: str | bytes, timeout: float = 10.0) -> dict:
    """POST a JSON body and return the decoded reply; an HTTP error raises with the server's message."""
    data = body.encode() if isinstance(body, str) else body
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        raise RuntimeError(f"{url} answered {error.code}: {error.read().decode(errors='replace')}") from None


def describe_model(path: str | Path) -> pd.DataFrame:
    """One ONNX file at a glance: size, format versions, input/output tensors and operators."""
    import onnx

    proto = onnx.load(str(path))
    graph = proto.graph

    def tensor(value) -> str:
        dims = [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type)
        return f"{value.name}: {dtype} [{', '.join(map(str, dims))}]"

    weights = sum(int(np.prod(t.dims)) for t in graph.initializer)
    rows = [
        ("file", f"{Path(path).name} ({Path(path).stat().st_size:,} bytes)"),
        ("ONNX IR / opset", f"{proto.ir_version} / {proto.opset_import[0].version}"),
        ("input", ", ".join(tensor(v) for v in graph.input)),
        ("output", ", ".join(tensor(v) for v in graph.output)),
        ("operators", " → ".join(node.op_type for node in graph.node)),
        ("weights", f"{weights:,} numbers"),
    ]
    return pd.DataFrame(rows, columns=["what", "value"]).set_index("what")


def pod_startup(timeline: pd.DataFrame) -> pd.DataFrame:
    """Each pod that became Ready: seconds from created to Running and on to Ready, from the timeline."""
    from servelab.backends import base

    kinds = {base.POD_CREATED: "created", base.POD_RUNNING: "running", base.POD_READY: "ready"}
    events = timeline[timeline["kind"].isin(list(kinds))]
    first = events.groupby(["object", "kind"])["t_s"].min().unstack("kind").rename(columns=kinds)
    first = first.dropna(subset=list(kinds.values()))
    table = pd.DataFrame({
        "created → running (s)": first["running"] - first["created"],
        "running → ready (s)": first["ready"] - first["running"],
        "created → ready (s)": first["ready"] - first["created"],
    })
    table.index = [name.removeprefix("pod/") for name in table.index]
    table.index.name = "pod"
    return table.round(3)


def pod_cost_table(pods: list[dict], price) -> pd.DataFrame:
    """Per pod (run_metadata()["pods"]): life so far, CPU used, dollars so far, per hour and per month.

    Cost follows servelab.cost (max(request, usage) x hours x price), so a pod that serves
    nothing still costs its requests; the last row adds the pods up.
    """
    from servelab import cost

    usages = [cost.PodUsage.from_dict(pod) for pod in pods]
    rows = cost.cost(usages, price, predictions_ok=0).breakdown.set_index("pod")
    per_hour = rows["dollars"] / rows["hours"]
    table = pd.DataFrame({
        "lived (s)": rows["hours"] * 3600,
        "CPU used (core-s)": [u.cpu_used_core_s for u in usages],
        "$ so far": rows["dollars"],
        "$ per hour": per_hour,
        f"$ per month ({HOURS_PER_MONTH} h)": per_hour * HOURS_PER_MONTH,
        "idle share": rows["idle_dollars"] / rows["dollars"],
    })
    money = [c for c in table.columns if c.startswith("$")]
    table.loc["all pods", money] = table[money].sum()
    return table


def results_dir(name: str) -> Path:
    """An empty folder for a lab's saved run, where its quiz looks ($SERVELAB_RESULTS or ./results).

    A re-run replaces what an earlier run saved there, so the quiz never mixes two runs.
    """
    from servelab.quiz.computed import results_root

    path = results_root() / name
    shutil.rmtree(path, ignore_errors=True)
    return path


def saturation_rate(table: pd.DataFrame) -> float | None:
    """The lowest offered rate from which p95 stays above 2x its lowest value in the sweep.

    `table` is `Sweep.summary()` (indexed by offered rate). "Stays above" ignores a single noisy
    step below saturation; None means the replica never saturated at the rates tried.
    """
    p95 = table["p95"].sort_index()
    high = p95 > SATURATION_FACTOR * p95.min()
    stays_high = high[::-1].cummin()[::-1]  # True from the first rate after which every rate is high
    return float(stays_high.idxmax()) if stays_high.any() else None


def compare_runs(runs: dict[str, Any]) -> pd.DataFrame:
    """Load runs side by side: requests, rates, percentiles (ms) and errors, one row per run."""
    keys = ["requests", "achieved_rate", "p50", "p95", "p99", "max", "errors"]
    return pd.DataFrame({name: {k: run.summary()[k] for k in keys} for name, run in runs.items()}).T.round(2)


def cost_by_rate(sweep, price=None) -> pd.DataFrame:
    """What each run of a sweep cost (servelab.cost, from the pods the cluster recorded), by offered rate."""
    from servelab import cost

    rows = {}
    for result in sweep:
        report = cost.cost_of_result(result, price)
        rows[round(result.summary()["offered_rate"], 2)] = {
            "predictions": report.predictions_ok,
            "$ for the run": report.dollars,
            "$ per hour": report.per_hour,
            "$ per 1M predictions": report.per_million,
            "idle share": report.idle_share,
        }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "offered_rate"
    return table


def deployment(*, model: str | None = None, replicas: int | None = None) -> dict:
    """The lesson's Deployment manifest as a dict, serving `model` and/or with `replicas` changed.

    Apply it with `cluster.apply(...)`; the file itself stays as the lesson has it.
    """
    manifest = yaml.safe_load((ROOT / DEPLOYMENT_FILE).read_text())
    if replicas is not None:
        manifest["spec"]["replicas"] = int(replicas)
    if model is not None:
        args = container(manifest)["args"]
        args[args.index("--model") + 1] = model
    return manifest


def wait_until(condition: Callable[[], bool], timeout_s: float) -> None:
    """Poll `condition` until it holds; a cluster changes on its own clock, so there is no event to await."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"still not true after {timeout_s:g} s: {condition.__doc__ or 'see the cell'}")
        time.sleep(0.2)


def step_edges(steps: list[tuple[float, float]]) -> list[float]:
    """Where a `load.Step`'s rate changes, in seconds from its start (first edge 0, last its end)."""
    return [0.0, *np.cumsum([seconds for seconds, _ in steps]).tolist()]


def ready_pods(timeline: pd.DataFrame, start_s: float) -> pd.DataFrame:
    """Ready pods (`ready`) after every readiness change, at `t` seconds since `start_s`, from t=0 on."""
    from servelab.backends import base

    changes = timeline[timeline.kind.isin([base.POD_READY, base.POD_NOT_READY, base.POD_TERMINATING])]
    ready: set[str] = set()
    rows = []
    for event in changes.itertuples():
        (ready.add if event.kind == base.POD_READY else ready.discard)(event.object)
        rows.append((event.t_s - start_s, len(ready)))
    counts = pd.DataFrame(rows, columns=["t", "ready"])
    before = counts[counts.t < 0]["ready"]
    at_start = pd.DataFrame({"t": [0.0], "ready": [before.iloc[-1] if len(before) else 0]})
    return pd.concat([at_start, counts[counts.t >= 0]], ignore_index=True)


def scaling_delays(timeline: pd.DataFrame, start_s: float, edges: list[float]) -> pd.Series:
    """How long the HPA took to follow a low-high-low step: scale-up, pod ready, scale-down (s).

    `edges` as from `step_edges`: the rate rises at edges[1] and falls at edges[2].
    """
    from servelab.backends import base

    scaled = timeline[(timeline.kind == base.SCALED) & (timeline.t_s >= start_s)]
    first_up = scaled[scaled["new"] > scaled["old"]]["t_s"].min() - start_s
    first_down = scaled[scaled["new"] < scaled["old"]]["t_s"].min() - start_s
    ready = ready_pods(timeline, start_s)
    first_ready = ready[(ready.t > first_up) & (ready.ready > 1)]["t"].min()
    return pd.Series({
        "step up → HPA scales up (s)": first_up - edges[1],
        "HPA scales up → new pod ready (s)": first_ready - first_up,
        "step down → HPA scales down (s)": first_down - edges[2],
    }).round(1)


def step_comparison(runs: dict[str, Any], price, peak: tuple[float, float], slo_ms: float) -> pd.DataFrame:
    """One row per run of the same step: p95 overall and in the peak, failures, late share, pods, $/1M, idle."""
    from servelab import cost

    late_column = f"over {slo_ms:g} ms or failed (%)"
    rows = {}
    for name, run in runs.items():
        frame, report, summary = run.frame, cost.cost_of_result(run, price), run.summary()
        ok = (frame.status >= 200) & (frame.status < 300)
        in_peak = frame[frame.intended_s.between(*peak) & ok]
        pod_seconds = sum(pod["end_s"] - pod["start_s"] for pod in run.meta["pods"])
        rows[name] = {
            "p95 (ms)": summary["p95"],
            "p95 in the peak (ms)": in_peak.latency_s.quantile(0.95) * 1000,
            "failed": summary["errors"],
            late_column: 100 * ((frame.latency_s * 1000 > slo_ms) | ~ok).mean(),
            "mean pods": pod_seconds / run.duration_s,
            "$ per 1M predictions": report.per_million,
            "idle share": report.idle_share,
        }
    return pd.DataFrame(rows).T


def finding(holds: bool, shows: str, otherwise: str) -> bool:
    """Say whether this run showed what the lab expects, instead of failing the notebook when it did not.

    A measurement on a shared or slow machine can miss the expected pattern for honest reasons
    (another program took the cores, the rates were too low for this CPU); the learner should read
    why and what to change, not a bare AssertionError. Returns `holds` so a caller can branch on it.
    """
    print(f"This run shows it: {shows}" if holds else f"This run did NOT show that {shows[0].lower()}{shows[1:]}\n  {otherwise}")
    return holds


def max_rate_within_slo(table: pd.DataFrame, slo_ms: float) -> float:
    """The highest offered rate of a sweep (`Sweep.summary()`) served with p95 <= `slo_ms` and no failure; 0 if none."""
    meets = table[(table["p95"] <= slo_ms) & (table["errors"] == 0)]
    return float(meets.index.max()) if len(meets) else 0.0


def scaling_table(sweeps: dict[int, Any]) -> pd.DataFrame:
    """For each replica count, its busiest run: what it served, the CPU its pods and the generator used,
    its speed-up over the fewest replicas, and the perfect speed-up to compare with.

    Pods' CPU is their measured CPU seconds over the window they were alive in that run.
    """
    def busiest(sweep) -> dict[str, float]:
        result = max(sweep, key=lambda r: r.summary()["achieved_rate"])
        pods = result.meta["pods"]
        window = max(pod["end_s"] for pod in pods) - min(pod["start_s"] for pod in pods)
        return {"served (req/s)": result.summary()["achieved_rate"],
                "pods' CPU (cores)": sum(pod["cpu_used_core_s"] for pod in pods) / window,
                "generator CPU (cores)": result.summary()["client_cpu"]}

    table = pd.DataFrame({n: busiest(sweep) for n, sweep in sweeps.items()}).T
    table.index.name = "replicas"
    fewest = table.index.min()
    table["CPU limit of the pods (cores)"] = table.index * _pod_cpu_limit()
    table["speed-up"] = table["served (req/s)"] / table.loc[fewest, "served (req/s)"]
    table["perfect speed-up"] = table.index / fewest
    return table


def _pod_cpu_limit() -> float:
    """The CPU limit (cores) of the lesson's Deployment, read from its manifest."""
    from servelab.backends.manifests import cpu_cores

    return cpu_cores(container(deployment())["resources"]["limits"]["cpu"])


def few_and_many(by_replicas: pd.DataFrame, costs: pd.DataFrame) -> pd.DataFrame:
    """The fewest and the most replicas at the highest and the lowest offered rate, side by side:
    p95, failures, $ per hour, $ per 1M predictions and idle share (the seed's two scaling mistakes)."""
    replicas = by_replicas.index.get_level_values("replicas")
    rates = by_replicas.index.get_level_values("offered_rate")
    few, many, low, high = replicas.min(), replicas.max(), rates.min(), rates.max()
    cases = {"one pod, heavy load": (few, high), "more pods, heavy load": (many, high),
             "one pod, low traffic": (few, low), "many pods, low traffic": (many, low)}
    return pd.DataFrame({case: {"replicas": n, "offered_rate": rate, **by_replicas.loc[(n, rate), ["p95", "errors"]],
                                **costs.loc[(n, rate), ["$ per hour", "$ per 1M predictions", "idle share"]]}
                         for case, (n, rate) in cases.items()}).T


# -- Lab 06: online, batch and edge --------------------------------------------------------------

def container(manifest: dict) -> dict:
    """The one container of a Deployment's or Job's pod template, to change its args or resources in place."""
    return manifest["spec"]["template"]["spec"]["containers"][0]


def roll_out(cluster, manifest: dict, timeout_s: float = 120) -> list[str]:
    """Apply a changed Deployment and wait until only its new pods are left, all Ready.

    Waiting for the old pods to be gone, not just for a new one to be Ready, keeps a
    terminating pod from being billed to (and competing for CPU with) the next measurement.
    """
    old = {pod.name for pod in cluster.pods()}
    lines = cluster.apply(manifest)
    replicas = manifest["spec"].get("replicas", 1)

    def rolled_out() -> bool:
        """only the new pods are left, all Ready"""
        pods = cluster.pods()
        return len(pods) == replicas and all(pod.ready and pod.name not in old for pod in pods)

    if not all(line.endswith("unchanged") for line in lines):
        wait_until(rolled_out, timeout_s)
    return lines


def warm_up(url: str, seconds: float = 1.0, rate: float = 20.0) -> None:
    """Send a second of requests and forget them: a new pod's first answers are slow (lab 01), not typical."""
    from servelab import load

    load.run(url, load.Constant(rate, seconds), progress=False)


def latency_and_cost(runs: dict[str, Any], price) -> pd.DataFrame:
    """Load runs through a cluster side by side: the pod's CPU request, p50/p95, failures and cost."""
    from servelab import cost

    rows = {}
    for name, run in runs.items():
        report, summary = cost.cost_of_result(run, price), run.summary()
        rows[name] = {"CPU request (cores)": run.meta["pods"][0]["cpu_request_cores"],
                      "offered_rate": summary["offered_rate"], "p50 (ms)": summary["p50"], "p95 (ms)": summary["p95"],
                      "errors": summary["errors"], "$ per hour": report.per_hour,
                      "$ per 1M predictions": report.per_million, "idle share": report.idle_share}
    return pd.DataFrame.from_dict(rows, orient="index")
