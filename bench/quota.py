"""How closely each rung of the limits ladder holds a busy process to its CPU limit.

Every rung this machine has (cgroup, user-scope, userspace; each forced in turn, a missing one
listed with why) holds two busy workloads at 0.1, 0.5 and 1.0 CPU for SECONDS each:
- spinner: a tree of two spinning processes, which could take two cores;
- pod: one model-server pod of the large model (a local cluster's Deployment with that CPU limit)
  under an open loop offering OVERLOAD times what the limit can serve, sized from this machine's
  CPU per request (measured first, on an unlimited pod).
The held CPU is read by psutil from the processes' own CPU times, independently of the rung, and
printed as held / limit (target: within 10%, 0.90-1.10x), beside the rung's own count (the number
the HPA and the cost model read), the 1-minute load average and, on the userspace rung, the cores
the enforcer process itself used meanwhile. A first row runs the spinner with no
limit: how much CPU the machine gives it now (on a shared machine a 1.0 limit can only be reached
when a whole core is free). Run it as an unprivileged user too, to see that user's ladder.

    .venv/bin/python -m bench quota     (part of `make bench`; `make bench AREAS=quota` alone)
"""

from __future__ import annotations

import copy
import getpass
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import yaml

from servelab import limits, load
from servelab.backends.local import LocalCluster

ROOT = Path(__file__).resolve().parents[1]
DEPLOYMENT = ROOT / "cluster" / "model-serving-deployment.yaml"
NAME = "model-serving-deployment"
LIMITS, SECONDS, WARM_S, OVERLOAD, TARGET = (0.1, 0.5, 1.0), 5.0, 1.0, 1.5, 0.10
BODY = {"instances": [[1.0 + i % 7, 2.0, 5.0] for i in range(64)]}  # ~10 ms of CPU per request: a few hundred req/s at most
# Forks at once: whether the fork comes before or after the rung adds the process, it must hold the child too.
SPINNER = "import os\nos.fork()\nwhile True: pass\n"


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of `pid` and its children, as psutil reads them."""
    root = psutil.Process(pid)
    return sum(sum(p.cpu_times()[:2]) for p in [root, *root.children(recursive=True)])


def window(pid: int, read_count: Callable[[], float], ladder: limits.Ladder) -> tuple[float, float, float | None]:
    """(cores by psutil, cores by the rung's count, cores the userspace enforcer used) over SECONDS, after WARM_S."""
    time.sleep(WARM_S)
    enforcer = ladder.enforcer_pid
    ps, counted, started = tree_cpu_s(pid), read_count(), time.monotonic()
    overhead = tree_cpu_s(enforcer) if enforcer else None
    time.sleep(SECONDS)
    elapsed = time.monotonic() - started
    if enforcer:
        overhead = (tree_cpu_s(enforcer) - overhead) / elapsed
    return (tree_cpu_s(pid) - ps) / elapsed, (read_count() - counted) / elapsed, overhead


def spinner(rung: str, limit: float | None) -> tuple[float, float, float | None]:
    import subprocess

    ladder = limits.detect(prefer=rung)
    held = ladder.hold("bench-spinner", limit, None)
    process = subprocess.Popen(held.command([sys.executable, "-c", SPINNER]), start_new_session=True)
    try:
        problem = held.add(process.pid)
        if problem and rung != "none":
            raise RuntimeError(f"the {rung} rung did not hold the spinner: {problem}")
        return window(process.pid, held.cpu_used_s, ladder)
    finally:
        os.killpg(process.pid, 9)
        process.wait()
        held.remove()
        ladder.close()


def deployment(cpu: str | None) -> dict:
    """The repo's Deployment with the large model and CPU limit `cpu` (None: no limit), without its
    livenessProbe: under this deliberate overload a pod at 0.1 CPU answers a probe late, and the
    restart a kubelet would make is not what this bench measures."""
    doc = copy.deepcopy(yaml.safe_load(DEPLOYMENT.read_text()))
    container = doc["spec"]["template"]["spec"]["containers"][0]
    container.pop("livenessProbe")
    container["args"][container["args"].index("--model") + 1] = "large"
    if cpu is None:
        container["resources"]["limits"].pop("cpu")
    else:  # Kubernetes refuses a request above the limit, so a limit under 0.5 CPU lowers the request too
        container["resources"]["limits"]["cpu"] = container["resources"]["requests"]["cpu"] = cpu
    return doc


def cpu_per_request_s() -> float:
    """CPU seconds one BODY request takes the large model here, on a pod with no CPU limit."""
    os.environ.pop("SERVELAB_LIMITS", None)
    with LocalCluster(service_port=0) as cluster:
        cluster.apply(deployment(None))
        cluster.wait_ready(NAME, timeout=120)
        (pod,) = cluster.pods()
        load.run_closed(pod.url, users=2, duration=1.0, body=BODY, progress=False)
        before = tree_cpu_s(pod.pid)
        result = load.run_closed(pod.url, users=2, duration=3.0, body=BODY, progress=False)
        return (tree_cpu_s(pod.pid) - before) / max(1, result.summary()["ok"])


def pod(rung: str, limit: float, per_request_s: float) -> tuple[float, float, float | None]:
    """A pod held at `limit` under an open loop of OVERLOAD x what the limit serves."""
    os.environ["SERVELAB_LIMITS"] = rung
    with LocalCluster(service_port=0) as cluster:
        cluster.apply(deployment(f"{limit * 1000:g}m"))
        cluster.wait_ready(NAME, timeout=120)
        (info,) = cluster.pods()
        if cluster.run_metadata()["limits_enforced"] is False:
            raise RuntimeError(f"the {rung} rung did not hold the pod: {cluster.run_metadata()['limits_note']}")
        rate = OVERLOAD * limit / per_request_s
        schedule = load.Constant(rate=rate, duration=WARM_S + SECONDS + 1.0)
        loader = threading.Thread(target=load.run, args=(info.url, schedule), kwargs={"body": BODY, "progress": False})
        loader.start()
        try:
            def count() -> float:
                return next(p for p in cluster.pods() if p.name == info.name).cpu_used_core_s

            return window(info.pid, count, cluster.limits)
        finally:
            loader.join()


def main() -> None:
    saved = os.environ.get("SERVELAB_LIMITS")
    print(f"user {getpass.getuser()}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    per_request_s = cpu_per_request_s()
    print(f"large model: {per_request_s * 1000:.1f} ms of CPU per 64-row request here (unlimited pod); each pod is "
          f"offered {OVERLOAD:g}x what its limit serves. Held CPU over {SECONDS:g} s, by psutil; target "
          f"{1 - TARGET:.2f}-{1 + TARGET:.2f}x of the limit")
    print(f"{'rung':<12}{'workload':<10}{'limit':>6}{'held':>8}{'held/limit':>12}{'rung count':>12}{'load':>6}"
          f"{'enforcer':>10}")
    try:
        free, _, _ = spinner("none", None)
        print(f"{'none':<12}{'spinner':<10}{'-':>6}{free:>8.3f}{'':>24}{os.getloadavg()[0]:>6.2f}  "
              "(no limit: what the machine gives the spinner now)")
        for rung in limits.RUNGS:
            ladder = limits.detect(prefer=rung)
            ladder.close()
            if ladder.rung is None:
                print(f"{rung:<12}not available: {ladder.tried[rung]}")
                continue
            for name, measure in (("spinner", lambda c, rung=rung: spinner(rung, c)), ("pod", lambda c, rung=rung: pod(rung, c, per_request_s))):
                for limit in LIMITS:
                    held, counted, overhead = measure(limit)
                    mark = "" if abs(held / limit - 1) <= TARGET else "  (off target)"
                    print(f"{ladder.rung:<12}{name:<10}{limit:>6.1f}{held:>8.3f}{held / limit:>11.2f}x{counted:>12.3f}"
                          f"{os.getloadavg()[0]:>6.2f}{'' if overhead is None else f'{overhead:10.3f}'}{mark}", flush=True)
    finally:
        if saved is None:
            os.environ.pop("SERVELAB_LIMITS", None)
        else:
            os.environ["SERVELAB_LIMITS"] = saved


if __name__ == "__main__":
    main()
