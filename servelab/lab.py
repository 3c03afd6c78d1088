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
import os
import platform
import shutil
from collections.abc import Iterable
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, TypeVar

import pandas as pd
import psutil

import servelab

if TYPE_CHECKING:
    from servelab.analysis.calibration import Capacity
    from servelab.analysis.findings import Finding
    from servelab.backends.base import Cluster
    from servelab.server import ServerProcess

QUICK = os.environ.get("SERVELAB_QUICK") == "1"
ROOT = Path(__file__).resolve().parents[1]
# Share of what this machine can send (`Capacity.machine_rate`, from one pod's calibration) that a lab's
# highest rate may reach before its pods are shrunk to fit (FIT_ABOVE), and the share it is shrunk to
# (FIT_TO): on 2 cores, 4 pods at 0.7 of it left 40% of requests late, at 0.6 none.
FIT_ABOVE, FIT_TO = 0.7, 0.55
HOURS_PER_MONTH = 730  # 8760 hours in a year / 12, the figure cloud price pages use

_open: list[Any] = []
Closable = TypeVar("Closable")  # whatever `track` is given, with close() or stop()


class Multiple:
    """Multiples of one pod's measured capacity, written in a lab's parameters cell as `capacity(0.5, 1.6)`."""

    def __init__(self, values: tuple[float, ...]) -> None:
        if not values or any(v <= 0 for v in values):
            raise ValueError(f"capacity(...) takes positive multiples, e.g. capacity(0.5, 1.6); got {values}")
        self.values = values

    def resolve(self, rate: float) -> float | list[float]:
        rates = [max(1.0, float(round(v * rate))) for v in self.values]
        return rates[0] if len(rates) == 1 else rates

    def __repr__(self) -> str:
        return ", ".join(f"{v:g}" for v in self.values) + " x capacity"


def capacity(*multiples: float) -> Multiple:
    """Rates as multiples of one pod's capacity on this machine, measured when `params` runs.

    `capacity(1.6)` is 1.6 times what one pod served within the lab's SLO; `capacity(0.1, 0.5, 1.5)`
    a list of such rates. A lab never names a request rate tuned to one machine.
    """
    return Multiple(tuple(float(m) for m in multiples))


def params(*, quick: dict[str, Any], full: dict[str, Any], recalibrate: bool = False,
           fit: bool = True) -> SimpleNamespace:
    """Pick the quick or full sizes, say which, and close anything an earlier run left open.

    Both dicts must have the same keys, so a lab reads the same names in either mode. When any
    value is a `capacity(...)` multiple, one pod of the lab's `model` is measured first (within its
    `slo_ms`, see servelab.analysis.calibration; once per kernel unless `recalibrate`), every
    multiple becomes requests/s for this machine, and `p.capacity` holds the measurement.

    `fit=False` keeps the pods at their manifest's size even where the highest multiple would load
    this machine more than the pods (a lab whose top rate is meant for a server that costs the
    machine less per request than the calibrated one, as a batching server does).
    """
    if quick.keys() != full.keys():
        raise ValueError(f"quick and full need the same keys; differ in {sorted(quick.keys() ^ full.keys())}")
    cleanup()  # a lab run again in the same kernel starts from nothing
    chosen = quick if QUICK else full
    mode = "quick (SERVELAB_QUICK=1: short runs for tests)" if QUICK else "full"
    print(f"mode: {mode}")
    measured = None
    if any(_has_multiple(v) for v in chosen.values()):
        measured = _calibrate(chosen, recalibrate, fit)
    resolved = {}
    for key, value in chosen.items():
        resolved[key] = _resolve(value, measured.rate) if measured else value
        shown = f"{value!r} = {resolved[key]!r} req/s" if _has_multiple(value) else repr(value)
        print(f"  {key} = {shown}")
    return SimpleNamespace(**resolved, capacity=measured)


def _calibrate(chosen: dict[str, Any], again: bool, fit: bool) -> Capacity:
    from servelab.analysis.calibration import calibrate
    from servelab.backends.local.pod_size import (
        CPU_SCALE_VARIABLE,
        emulated_scale,
        fit_pods,
    )

    missing = {"model", "slo_ms"} - chosen.keys()
    if missing:
        raise ValueError(f"rates given as capacity(...) need {sorted(missing)} in the parameters: the pod's model "
                         "and the SLO its capacity is measured against")
    fit_pods(1.0)  # as the manifests say, until this machine is measured
    if emulated_scale() != 1:
        print(f"  {CPU_SCALE_VARIABLE}={emulated_scale():g}: every pod's CPU limit is multiplied by {emulated_scale():g}, "
              "to emulate a faster or slower machine (a test setting)")
    measured = calibrate(chosen["model"], chosen["slo_ms"], quick=QUICK, again=again)
    print(f"this machine: {measured}")
    peak = max(_multiples(chosen.values()))
    if fit and measured.backend == "local" and peak * measured.rate > FIT_ABOVE * measured.machine_rate:
        # The most this lab offers would measure the machine (its load generator and Service), not the
        # pods: shrink the pods until it fits, and say so. Sized on the cores the pod really used,
        # since one server process uses one core at most whatever its limit.
        used = measured.rate * measured.cpu_ms / 1000
        limit = min(measured.cpu_limit or used, used) * FIT_TO * measured.machine_rate / (peak * measured.rate)
        fit_pods(limit / (measured.cpu_limit or used))  # measured at fit 1: the limit is the manifest's x the emulation
        print(f"  this machine sends at most {measured.machine_rate:.0f} req/s through a Service (load generator, "
              f"Service and pods together); {peak:g} x one pod ({peak * measured.rate:.0f} req/s) is more than "
              f"{FIT_ABOVE:.0%} of that: what this lab offers would measure the machine, not the pods. So every pod of this lab is held "
              f"at {limit:.2g} CPU, not its manifest's {(measured.cpu_limit or 0) / emulated_scale():g} (as if its pods ran on a "
              f"slower CPU than its load generator), and measured again:")
        measured = calibrate(chosen["model"], chosen["slo_ms"], quick=QUICK, again=again)
        print(f"this machine: {measured}")
    return measured


def _multiples(values: Iterable[object]) -> list[float]:
    """Every multiple of the capacity among a lab's parameters (lists and tuples too)."""
    found: list[float] = []
    for value in values:
        if isinstance(value, Multiple):
            found += value.values
        elif isinstance(value, (list, tuple)):
            found += _multiples(value)
    return found


def _has_multiple(value: Any) -> bool:
    return bool(_multiples([value]))


def _resolve(value: Any, rate: float) -> Any:
    """Replace every `capacity(...)` inside `value` (lists and tuples too) with requests/s."""
    if isinstance(value, Multiple):
        return value.resolve(rate)
    if isinstance(value, (list, tuple)):
        return type(value)(_resolve(v, rate) for v in value)
    return value


def track(thing: Closable) -> Closable:
    """Remember something with close() or stop() so `cleanup()` ends it; returns it unchanged."""
    if not (hasattr(thing, "close") or hasattr(thing, "stop")):
        raise TypeError(f"{type(thing).__name__} has neither close() nor stop(); nothing to clean up")
    _open.append(thing)
    return thing


def cleanup() -> None:
    """Close everything the lab started, newest first. Safe to call again: the second does nothing."""
    while _open:
        thing = _open.pop()
        stop = getattr(thing, "close", None) or thing.stop
        try:
            stop()
        except Exception as error:  # one failure must not leave the rest running
            print(f"cleanup: closing {type(thing).__name__} failed: {error}")
        else:
            print(f"cleanup: closed {type(thing).__name__}")


atexit.register(cleanup)


def connect(*, service_port: int | None = None, **kwargs: Any) -> Cluster:
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


def _define_kubectl_magic(cluster: Cluster) -> None:
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


def environment(cluster: Cluster) -> pd.DataFrame:
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


def results_dir(name: str) -> Path:
    """An empty folder for a lab's saved run, where its quiz looks ($SERVELAB_RESULTS or ./results).

    A re-run replaces what an earlier run saved there, so the quiz never mixes two runs.
    """
    from servelab.quiz.computed import results_root

    path = results_root() / name
    shutil.rmtree(path, ignore_errors=True)
    return path


def finding(id: str, claim: str, holds: bool, evidence: str, otherwise: str = "") -> bool:
    """Say whether this run showed `claim`, with the numbers and the threshold that decided it.

    A measurement on a shared or slow machine can miss the expected pattern for honest reasons;
    the learner should read why and what to change, not a bare AssertionError. The verdict is also
    recorded in the results folder's findings.jsonl, where the tests read it. Returns `holds`.
    """
    from servelab.analysis.findings import Finding

    return report(Finding(id, claim, bool(holds), evidence, otherwise))


def cannot_show(id: str, claim: str, why: str) -> bool:
    """Say plainly that this machine cannot show `claim`, and why (too few cores, one CPU, ...)."""
    from servelab.analysis.findings import Finding

    return report(Finding(id, claim, False, "", cannot=why))


def report(found: Finding) -> bool:
    """Print a finding (servelab.analysis.findings.Finding) and record it; returns whether it holds."""
    from servelab.quiz.computed import results_root

    print(found)
    found.record(results_root() / "findings.jsonl")
    return found.holds


