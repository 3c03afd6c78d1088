"""The simulator replays a 24-hour day at a mean of 100 requests/s (~8.6M requests) with the HPA in the loop.

Target: at most 10 s on one core. Service times are a synthetic stand-in for a calibrated run
(lognormal, median 8 ms), so the bench needs no server; wall and CPU time are both printed because
on a shared machine wall time also counts other programs.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from servelab import cost, sim
from servelab.load import schedules

HPA_MANIFEST = Path(__file__).resolve().parents[1] / "cluster" / "model-serving-hpa.yaml"
TARGET_S = 10.0


def main() -> None:
    service = sim.ServiceTimes.empirical(
        np.random.default_rng(0).lognormal(np.log(0.008), 0.3, 20_000), "synthetic lognormal, median 8 ms"
    )
    day = schedules.Diurnal(mean_rate=100, peak_to_trough=4, duration=86400)
    policy = sim.Autoscaled.from_manifest(HPA_MANIFEST)

    wall0, cpu0 = time.perf_counter(), time.process_time()
    arrivals = day.send_times()
    wall1, cpu1 = time.perf_counter(), time.process_time()
    result = sim.simulate(arrivals, service, policy=policy, startup_s=5.0)
    wall2, cpu2 = time.perf_counter(), time.process_time()

    latency_ms = np.percentile(result.frame["latency_s"].to_numpy(), [50, 95, 99]) * 1000
    replicas = sim.replica_timeline(result)["replicas"]
    report = cost.cost_of_result(result)
    rows = [
        ("requests simulated", f"{len(result.frame):,}"),
        ("arrival times (schedule) wall / cpu s", f"{wall1 - wall0:.2f} / {cpu1 - cpu0:.2f}"),
        ("simulation wall / cpu s", f"{wall2 - wall1:.2f} / {cpu2 - cpu1:.2f}"),
        ("total wall / cpu s", f"{wall2 - wall0:.2f} / {cpu2 - cpu0:.2f}  (target <= {TARGET_S:g} s)"),
        ("latency p50 / p95 / p99 ms", " / ".join(f"{v:.1f}" for v in latency_ms)),
        ("replicas min / mean / max", f"{replicas.min()} / {replicas.mean():.2f} / {replicas.max()}"),
        ("pods created", f"{len(result.meta['pods'])}"),
        ("cost (opencost-default on-demand)", f"${report.dollars:.4f}, ${report.per_million:.4f} per 1M, idle {report.idle_share:.0%}"),
    ]
    width = max(len(name) for name, _ in rows)
    print("24 h diurnal day (mean 100 req/s, peak/trough 4) with the HPA in the loop")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    verdict = "meets" if cpu2 - cpu0 <= TARGET_S else "misses"
    print(f"  {verdict} the {TARGET_S:g} s target in CPU time on one core")


if __name__ == "__main__":
    main()
