"""Does `--workers 2` let one server use two cores? The large model with 1 and 2 workers, same run.

For each server, in alternating rounds: requests/s at saturation (wrk, 16 keep-alive
connections) and the p50 of an open-loop run at a low rate (the servelab load generator), which
shows what the hop to a model thread costs a single request. Neither server is pinned: the
2-worker one needs both cores, and wrk shares them (it needs little at these rates).

    .venv/bin/python -m bench workers          (part of `make bench`)
"""

from __future__ import annotations

import os
import shutil
import statistics
from typing import TYPE_CHECKING

from bench import wrk

if TYPE_CHECKING:
    from servelab.server import ServerProcess

BODY = b'{"instances": [[1.0, 2.0, 5.0]]}'
MODEL = "large"
SATURATION = {"connections": 16, "duration_s": 5}
LOW_RATE, LOW_RATE_S = 20.0, 5.0
ROUNDS = 3


def _round(server: ServerProcess, script: str) -> tuple[float, float]:
    """(requests/s at saturation, open-loop p50 in ms at LOW_RATE) for one running server."""
    from servelab import load
    from servelab.core.schedules import Constant

    wrk.run(server.predict_url, script, connections=4, duration_s=1)  # warm-up
    saturated = wrk.run(server.predict_url, script, **SATURATION)
    if saturated["non_2xx"] or saturated["socket_errors"]:
        raise RuntimeError(f"{server}: {saturated['non_2xx']} non-2xx answers, {saturated['socket_errors']} socket errors")
    low = load.run(server.url, Constant(LOW_RATE, LOW_RATE_S), model=server.name, progress=False).summary()
    return saturated["rps"], low["p50"]


def main() -> None:
    from servelab.server import ServerProcess

    if shutil.which("wrk") is None:
        print("wrk is not installed (Debian/Ubuntu: apt-get install wrk; macOS: brew install wrk); skipping")
        return
    print(f"Workers: servelab serve --model {MODEL} --workers 1 vs 2 (1 onnxruntime thread each); saturation: "
          f"wrk -t1 -c{SATURATION['connections']} -d{SATURATION['duration_s']}s; low rate: open loop "
          f"{LOW_RATE:g} req/s for {LOW_RATE_S:g} s; {ROUNDS} rounds in alternating order; {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    results: dict[int, list[tuple[float, float]]] = {1: [], 2: []}
    with wrk.post_script(BODY) as script, ServerProcess(model=MODEL, workers=1) as one, \
            ServerProcess(model=MODEL, workers=2) as two:
        servers = {1: one, 2: two}
        for k in range(ROUNDS):
            for workers in ((1, 2) if k % 2 == 0 else (2, 1)):
                results[workers].append(_round(servers[workers], script))
    base = statistics.median(rps for rps, _ in results[1])
    print(f"  {'workers':<9}{'req/s':>8}{'vs 1':>7}{'p50 ms':>9}   per-round req/s")
    for workers, rounds in results.items():
        rps = statistics.median(r for r, _ in rounds)
        print(f"  {workers:<9}{rps:>8.0f}{rps / base:>6.2f}x{statistics.median(p for _, p in rounds):>9.2f}   "
              + ", ".join(f"{r:.0f}" for r, _ in rounds))
    print("  (medians over rounds; p50 of the open-loop run, from each request's intended send time)")


if __name__ == "__main__":
    main()
