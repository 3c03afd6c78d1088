"""Chaos on the embedded cluster, near the Service's capacity measured in the same run.

- kill -9 of one of 4 pods under open-loop load: requests lost, against the requests in flight at
  that instant; seconds until the pod runs again and is Ready, against its restart back-off.
- scale 4 -> 1 under open-loop load: requests lost (expected 0).

The model is the large one, so that the pods, not the load generator or the Service, are what
the rate saturates; the rate is `servelab.chaos.FRACTION` of the closed-loop capacity (see
servelab/chaos.py).

    .venv/bin/python -m bench chaos     (part of `make bench`)
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from servelab import chaos
from servelab.backends.local import LocalCluster, allocatable

ROOT = Path(__file__).resolve().parents[1]
SERVICE = ROOT / "cluster" / "model-serving-service.yaml"


def large_model_deployment() -> dict:
    """The repo's Deployment serving the large model (same requests and limits)."""
    manifest = yaml.safe_load((ROOT / "cluster" / "model-serving-deployment.yaml").read_text())
    args = manifest["spec"]["template"]["spec"]["containers"][0]["args"]
    args[args.index("--model") + 1] = "large"
    return manifest


def main() -> None:
    node = allocatable()
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; node: {node}")
    with LocalCluster(service_port=0) as cluster:
        cluster.apply([SERVICE, large_model_deployment()])
        cluster.wait_ready(chaos.DEPLOYMENT, timeout=60)
        spec = cluster.pod_spec(cluster.pods()[0].name)
        replicas = min(4, node.fits(spec.cpu_request, spec.memory_request))
        if replicas < 2:
            print(f"bench/chaos.py: this machine holds {replicas} pod(s) of 0.5 CPU; the kill needs 2; skipped")
            return
        print(chaos.run(cluster, replicas=replicas))


if __name__ == "__main__":
    main()
