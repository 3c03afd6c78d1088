"""What the embedded cluster costs: the Service hop, an added round trip, and how fast pods become Ready.

- Service hop: `hey` sends the same moderate open-rate load (RATE requests/s over CONNECTIONS
  kept-alive connections) straight to one pod and through the Service, alternating, ROUNDS
  times, in one run; the median per-request p50 of each (from hey's CSV, interpolated within
  its 0.1 ms steps) and their ratio (target <= 1.25x) are printed, for both Service modes, with
  the load average at the start (other work on the machine shows in the ratio).
- Added round trip: in the same rounds, a second Service annotated with a ROUND_TRIP_MS round
  trip (no jitter) in front of the same pod; its p50 minus the plain Service's is what the
  annotation added, which should be ROUND_TRIP_MS and a little more (timers count whole ms).
- Ready: seconds from `apply` of the 1-replica deployment to 1/1 Ready (target 5 s), and from
  `kill -9` of a pod to its restarted container being Ready (target 5 s).
- Checking manifests: what `apply` spends validating the Deployment, Service and HPA before it
  creates anything, in a fresh process (the first check imports the schema library) and after.

    .venv/bin/python -m bench local     (part of `make bench`)
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from servelab.backends.local import LocalCluster
from servelab.backends.local.proxy.round_trip import ANNOTATION
from servelab.core.manifests import load_documents

ROOT = Path(__file__).resolve().parents[1]
DEPLOYMENT = ROOT / "cluster" / "model-serving-deployment.yaml"
SERVICE = ROOT / "cluster" / "model-serving-service.yaml"
NAME = "model-serving-deployment"
BODY = '{"instances": [[1.0, 2.0, 5.0]]}'
RATE, CONNECTIONS, SECONDS, ROUNDS = 100, 2, 4, 5
ROUND_TRIP_MS = 20.0


def hey_p50_ms(url: str, body_file: str) -> float:
    """Median latency (ms) of `hey` at RATE requests/s over CONNECTIONS connections for SECONDS."""
    out = subprocess.run(
        ["hey", "-z", f"{SECONDS}s", "-c", str(CONNECTIONS), "-q", str(RATE // CONNECTIONS), "-m", "POST",
         "-D", body_file, "-o", "csv", url + "/v1/models/my-model:predict"],
        capture_output=True, text=True, check=True,
    ).stdout
    rows = [line.split(",") for line in out.splitlines()[1:] if line]
    latencies = [float(r[0]) for r in rows if r[6] == "200"]
    if len(latencies) < len(rows) or not latencies:
        raise RuntimeError(f"hey saw {len(rows) - len(latencies)} failed requests of {len(rows)} at {url}")
    # hey writes times in 0.1 ms steps; the grouped median interpolates within the middle step,
    # so a ratio of two p50s is not rounded to the nearest 0.1 ms first.
    return statistics.median_grouped([round(x * 1000, 1) for x in latencies], interval=0.1)


def far_service() -> dict:
    """The repo's Service as seen from ROUND_TRIP_MS away: an annotated copy under another name."""
    (service,) = load_documents(SERVICE)
    service["metadata"]["name"] = "model-serving-far"
    service["metadata"]["annotations"] = {ANNOTATION: f"{ROUND_TRIP_MS:g}ms"}
    return service


def service_hop(mode: str, body_file: str) -> dict[str, float]:
    """p50 ms straight to the pod ("direct"), through the Service, and (per request) through the far
    Service, each the median over ROUNDS alternating runs."""
    with LocalCluster(service_port=0, service_mode=mode) as cluster:
        cluster.apply([SERVICE, DEPLOYMENT] + ([far_service()] if mode == "per-request" else []))
        cluster.wait_ready(NAME, timeout=60)
        urls = {"direct": cluster.pods()[0].url, "service": cluster.service_url()}
        if mode == "per-request":
            urls["far"] = cluster.service_url("model-serving-far")
        for url in urls.values():
            hey_p50_ms(url, body_file)  # warm-up: connections, model, proxy
        p50s: dict[str, list[float]] = {name: [] for name in urls}
        for _ in range(ROUNDS):
            for name, url in urls.items():
                p50s[name].append(hey_p50_ms(url, body_file))
    return {name: statistics.median(values) for name, values in p50s.items()}


def time_to_ready() -> tuple[float, float]:
    """(apply -> 1/1 Ready, kill -9 -> restarted and Ready), in seconds."""
    with LocalCluster(service_port=0) as cluster:
        started = time.monotonic()
        cluster.apply(DEPLOYMENT)
        cluster.wait_ready(NAME, timeout=60)
        to_ready = time.monotonic() - started
        (pod,) = cluster.pods()
        started = time.monotonic()
        os.kill(pod.pid, signal.SIGKILL)
        while not any(p.restarts == 1 and p.ready for p in cluster.pods()):
            time.sleep(0.02)
        return to_ready, time.monotonic() - started


CHECK_TIMES = f"""
import json, time
started = time.perf_counter()
from servelab.core.manifests import check, load_documents
docs = load_documents([{str(DEPLOYMENT)!r}, {str(SERVICE)!r}, {str(ROOT / "cluster" / "model-serving-hpa.yaml")!r}])
check(docs)
first = time.perf_counter() - started
times = []
for _ in range(20):
    started = time.perf_counter()
    check(docs)
    times.append(time.perf_counter() - started)
print(json.dumps([first, sorted(times)[10]]))
"""


def check_times() -> tuple[float, float]:
    """(first check of the kit's 3 manifests in a fresh process, median of the next 20), in seconds."""
    out = subprocess.run([sys.executable, "-c", CHECK_TIMES], capture_output=True, text=True, check=True).stdout
    first, later = json.loads(out)
    return first, later


def main() -> None:
    if shutil.which("hey") is None:
        print("bench/local.py: hey is not installed (apt-get install hey); skipped")
        return
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        f.write(BODY)
    try:
        print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
        print(f"Service hop: p50 at {RATE} req/s over {CONNECTIONS} kept-alive connections, tiny model, "
              f"1 pod (0.5 CPU limit), median of {ROUNDS} alternating {SECONDS} s runs (hey)")
        print(f"{'service mode':<16}{'direct p50':>12}{'service p50':>13}{'ratio':>8}  target <= 1.25x")
        far = None
        for mode in ("per-request", "per-connection"):
            p50 = service_hop(mode, f.name)
            print(f"{mode:<16}{p50['direct']:>10.2f}ms{p50['service']:>11.2f}ms{p50['service'] / p50['direct']:>7.2f}x")
            far = p50 if "far" in p50 else far
        print(f"Added round trip ({ANNOTATION}: {ROUND_TRIP_MS:g}ms, per request, same rounds): far Service p50 "
              f"{far['far']:.2f} ms - Service p50 {far['service']:.2f} ms = {far['far'] - far['service']:.2f} ms added")
    finally:
        os.unlink(f.name)
    to_ready, restart = time_to_ready()
    print(f"apply -> 1/1 Ready: {to_ready:.1f} s (target 5 s); kill -9 -> restarted pod Ready: {restart:.1f} s (target 5 s)")
    first, later = check_times()
    print(f"checking the Deployment, Service and HPA before apply: {first:.2f} s the first time in a process "
          f"(the schema library's import), then {later * 1000:.0f} ms")


if __name__ == "__main__":
    main()
