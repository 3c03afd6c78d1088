"""The simulator's prediction against a live run on the local backend (issue 6, Must show 4).

One replica of the large model (0.5 CPU, enforced through cgroups where the machine allows) is
calibrated from a 15 s low-load run and a 5 s saturating closed loop, then served a 2-minute step
trace: 4 steps of 30 s at 20/40/60/75% of the capacity just measured. The simulator replays the
same arrival times. Printed: measured vs predicted p95 and $/1M per step and overall, with the
error in %; the target is p95 within 15% at loads below 80% of capacity. The four runs and both
tables are saved in a temporary directory (printed) for a second look.

    .venv/bin/python -m bench sim_live
"""

from __future__ import annotations

import copy
import os
import tempfile
import time
from pathlib import Path

import yaml

from servelab import validate
from servelab.backends.local import LocalCluster

ROOT = Path(__file__).resolve().parents[1]
SERVICE = ROOT / "cluster" / "model-serving-service.yaml"
DEPLOYMENT = ROOT / "cluster" / "model-serving-deployment.yaml"
MODEL = "large"  # tiny serves >1000 req/s at 0.5 CPU: more than the generator offers on 2 shared cores
TARGET_PCT, TARGET_BELOW_LOAD = 15.0, 0.8


def deployment(model: str) -> dict:
    """The repo's Deployment serving `model`."""
    doc = copy.deepcopy(yaml.safe_load(DEPLOYMENT.read_text()))
    args = doc["spec"]["template"]["spec"]["containers"][0]["args"]
    args[args.index("--model") + 1] = model
    return doc


def main() -> None:
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    with LocalCluster(service_port=0) as cluster:
        cluster.apply([SERVICE, deployment(MODEL)])
        cluster.wait_ready("model-serving-deployment", timeout=60)
        check = validate.against_live(cluster, step_s=30.0, calibration_s=15.0, saturation_s=5.0, progress=False)
    meta = check.live.meta
    print(f"model {MODEL}, 1 replica, CPU limit {meta.get('cpu_limit_cores')} cores "
          f"({'enforced' if meta.get('limits_enforced') else 'NOT enforced: ' + str(meta.get('limits_note'))}), "
          f"{meta.get('cpu_count')} CPUs; 1-min load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after "
          "(other programs on the machine take CPU from the pod and the generator)")
    print(check)
    print(f"runs and tables saved in {check.save(tempfile.mkdtemp(prefix='servelab-sim-live-'))}")
    under = check.steps[check.steps["load"] < TARGET_BELOW_LOAD]
    worst = under["p95_error_pct"].abs().max()
    verdict = "meets" if worst <= TARGET_PCT else "misses"
    print(f"worst p95 error below {TARGET_BELOW_LOAD:.0%} load: {worst:.1f}% ({verdict} the {TARGET_PCT:g}% target); "
          f"took {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
