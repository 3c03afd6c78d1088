"""The simulator replays a 24-hour day at a mean of 100 requests/s (~8.6M requests) with the HPA in the loop.

Target: at most 10 s on one core. Service times are a synthetic stand-in for a calibrated run, so
the bench needs no server. The day runs twice on the same arrivals, with the same CPU per request
(lognormal, median 4 ms of CPU): once on pods without a CPU limit that burn 0.5 core for 8 ms per
request (how a pod was modelled before CFS quota was), once on pods that burn 1 core for 4 ms
under a 0.5-CPU limit enforced as CFS quota (how `sim.calibrate` models a live pod now). The
day's arrivals are evenly spaced and the HPA holds pods near 50% of their request, so no period
runs out of quota and both give the same latencies; with Poisson arrivals they differ (the quota
stalls a burst, the half-speed pod queues every request). Wall and CPU time are both printed
because on a shared machine wall time also counts other programs.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from servelab import sim
from servelab.core import cost, schedules

HPA_MANIFEST = Path(__file__).resolve().parents[1] / "cluster" / "model-serving-hpa.yaml"
TARGET_S = 10.0


def main() -> None:
    cpu_s = np.random.default_rng(0).lognormal(np.log(0.004), 0.3, 20_000)
    pods = {
        "no limit, 0.5 core x 8 ms": (sim.ServiceTimes.empirical(2 * cpu_s, "synthetic lognormal, median 8 ms"), sim.PodSize()),
        "0.5 CPU quota, 1 core x 4 ms": (
            sim.ServiceTimes.empirical(2 * cpu_s, "synthetic lognormal, answer median 8 ms", busy_s=cpu_s),
            sim.PodSize(cpu_busy_cores=1.0, cpu_limit_cores=0.5),
        ),
    }
    day = schedules.Diurnal(mean_rate=100, peak_to_trough=4, duration=86400)
    policy = sim.Autoscaled.from_manifest(HPA_MANIFEST)

    wall0, cpu0 = time.perf_counter(), time.process_time()
    arrivals = day.send_times()
    arrival_wall, arrival_cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    print("24 h diurnal day (mean 100 req/s, peak/trough 4) with the HPA in the loop, "
          f"{len(arrivals):,} requests; arrival times {arrival_wall:.2f} s wall / {arrival_cpu:.2f} s cpu")
    worst = 0.0
    for name, (service, pod) in pods.items():
        wall1, cpu1 = time.perf_counter(), time.process_time()
        result = sim.simulate(arrivals, service, policy=policy, startup_s=5.0, pod=pod)
        wall, cpu = time.perf_counter() - wall1, time.process_time() - cpu1
        worst = max(worst, arrival_cpu + cpu)
        latency_ms = np.percentile(result.frame["latency_s"].to_numpy(), [50, 95, 99]) * 1000
        replicas = sim.replica_timeline(result)["replicas"]
        report = cost.cost_of_result(result)
        rows = [
            ("simulation wall / cpu s", f"{wall:.2f} / {cpu:.2f}"),
            ("with arrivals, cpu s", f"{arrival_cpu + cpu:.2f}  (target <= {TARGET_S:g} s)"),
            ("latency p50 / p95 / p99 ms", " / ".join(f"{v:.1f}" for v in latency_ms)),
            ("replicas min / mean / max", f"{replicas.min()} / {replicas.mean():.2f} / {replicas.max()}"),
            ("pods created", f"{len(result.meta['pods'])}"),
            ("cost (opencost-default on-demand)", f"${report.dollars:.4f}, ${report.per_million:.4f} per 1M, idle {report.idle_share:.0%}"),
        ]
        width = max(len(label) for label, _ in rows)
        print(f"  {name}:")
        for label, value in rows:
            print(f"    {label:<{width}}  {value}")
    verdict = "meets" if worst <= TARGET_S else "misses"
    print(f"  {verdict} the {TARGET_S:g} s target in CPU time on one core (slowest: {worst:.2f} s)")


if __name__ == "__main__":
    main()
