"""Does the server shed overload or collapse? Goodput and 503 latency at 3x and 10x its connection limit.

One `servelab serve --model tiny` with its default limits (--max-concurrency 100, and as many
connections) runs pinned to CPU 0; wrk and a probe run on CPU 1, as the issue measured it.
In each round wrk holds keep-alive connections open and sends as fast as answers come back:
first as many as the server's connection limit (its capacity: nothing is refused), then 3x
and 10x as many. A refused wrk connection reconnects at once, the worst case for a server.

wrk cannot split latency by status, and it times a request only once its connection is open.
So a probe, a new client every 20 ms, opens its own connection and sends one prediction; its
latency runs from the connect to the last byte, and is reported per status: what a client
arriving in the middle of the flood gets. RSS is read at the start, after a warm-up at the
limit (the baseline), and 3 s after the last flood.

    .venv/bin/python -m bench overload          (part of `make bench`)
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import time

import numpy as np
import psutil

from bench import wrk

BODY = b'{"instances": [[1.0, 2.0, 5.0]]}'
LIMIT = 100  # servelab serve's default --max-concurrency, and so its connection limit
LEVELS = (1, 3, 10)  # wrk connections, in multiples of LIMIT
ROUNDS = 2
DURATION_S = 8
PROBE_EVERY_S = 0.02
SERVER_CPUS, CLIENT_CPUS = {0}, {1}
TARGETS = "goodput at 10x >= 0.8x capacity, 503 p99 <= 5 ms, RSS within 5% of its baseline"


async def _probe_once(host: str, port: int, request: bytes) -> tuple[int, float]:
    """(status, seconds from connect to the end of the response); status 0 for a failure."""
    start = time.perf_counter()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 10)
        try:
            writer.write(request)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await asyncio.wait_for(reader.readexactly(length), 10)
            status = int(head[9:12])
        finally:
            writer.close()
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError, IndexError):
        status = 0
    return status, time.perf_counter() - start


async def _flood_with_probe(url: str, script: str, connections: int) -> tuple[dict, list[tuple[int, float]]]:
    """wrk at `connections` for DURATION_S, and the probe's (status, seconds) over the same time."""
    args = wrk.command(url, script, connections=connections, duration_s=DURATION_S, threads=2, timeout_s=10,
                       cpus=CLIENT_CPUS)
    process = await asyncio.create_subprocess_exec(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    host, port = url.split("//")[1].split("/")[0].split(":")
    request = (f"POST /{url.split('/', 3)[3]} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(BODY)}\r\nConnection: close\r\n\r\n").encode() + BODY
    probes: list[asyncio.Task] = []
    await asyncio.sleep(0.5)  # wrk has opened its connections
    finish = time.perf_counter() + DURATION_S - 1.0
    while time.perf_counter() < finish:
        probes.append(asyncio.create_task(_probe_once(host, int(port), request)))
        await asyncio.sleep(PROBE_EVERY_S)
    out, err = await process.communicate()
    if process.returncode:
        raise RuntimeError(f"wrk failed: {err.decode()}")
    return wrk.parse(out.decode()), list(await asyncio.gather(*probes))


def _percentiles_ms(samples: list[tuple[int, float]], status: int) -> str:
    seconds = [s for code, s in samples if code == status]
    if not seconds:
        return f"{'-':>17}"
    p50, p99 = np.percentile(seconds, [50, 99]) * 1000
    return f"{p50:>8.1f}{p99:>9.1f}"


def _measure(server_url: str, server_pid: int) -> tuple[dict[int, list], dict[str, float]]:
    """Every level in every round: wrk's reports with the probe's samples, and RSS at three points."""
    url = f"{server_url}/v1/models/my-model:predict"
    server = psutil.Process(server_pid)
    rss = {"start": server.memory_info().rss}
    runs: dict[int, list] = {level: [] for level in LEVELS}
    with wrk.post_script(BODY) as script:
        wrk.run(url, script, connections=LIMIT, duration_s=3, threads=2, cpus=CLIENT_CPUS)  # warm-up
        time.sleep(2)
        rss["baseline"] = server.memory_info().rss
        for _ in range(ROUNDS):
            for level in LEVELS:
                runs[level].append(asyncio.run(_flood_with_probe(url, script, LIMIT * level)))
                rss[f"after {level}x"] = max(rss.get(f"after {level}x", 0), server.memory_info().rss)
    time.sleep(3)
    rss["3 s after the last flood"] = server.memory_info().rss
    return runs, rss


def _table(runs: dict[int, list], rss: dict[str, float]) -> None:
    capacity = [(r["requests"] - r["non_2xx"]) / r["seconds"] for r, _ in runs[1]]
    print(f"  {'wrk connections':<18}{'goodput/s':>10}{'vs capacity':>12}{'503/s':>8}{'wrk p50':>9}{'wrk p99':>9}"
          f"{'errors':>8}   new client: {'200 p50':>8}{'p99':>9}{'503 p50':>10}{'p99':>9}  (ms; n)")
    for level in LEVELS:
        reports = [report for report, _ in runs[level]]
        samples = [sample for _, probe in runs[level] for sample in probe]
        goodput = [(r["requests"] - r["non_2xx"]) / r["seconds"] for r in reports]
        ratios = [g / c for g, c in zip(goodput, capacity)]
        refused = statistics.median(r["non_2xx"] / r["seconds"] for r in reports)
        label = f"{LIMIT * level} ({level}x limit)" if level > 1 else f"{LIMIT} (the limit)"
        print(f"  {label:<18}{statistics.median(goodput):>10.0f}{statistics.median(ratios):>11.2f}x{refused:>8.0f}"
              f"{statistics.median(r['p50_ms'] for r in reports):>9.1f}{statistics.median(r['p99_ms'] for r in reports):>9.1f}"
              f"{sum(r['socket_errors'] for r in reports):>8}   {'':>12}{_percentiles_ms(samples, 200)} "
              f"{_percentiles_ms(samples, 503)}  n={len(samples)}, failed {sum(1 for code, _ in samples if code == 0)}")
    print("  per-round goodput vs capacity: " + "; ".join(
        f"{level}x " + ", ".join(f"{(r['requests'] - r['non_2xx']) / r['seconds'] / c:.2f}"
                                 for (r, _), c in zip(runs[level], capacity))
        for level in LEVELS[1:]))
    base = rss["baseline"]
    print("  RSS: " + ", ".join(f"{label} {value / 2**20:.1f} MB ({value / base - 1:+.1%})" for label, value in rss.items()))


def main() -> None:
    from servelab.server import ServerProcess

    if shutil.which("wrk") is None:
        print("wrk is not installed (Debian/Ubuntu: apt-get install wrk; macOS: brew install wrk); skipping")
        return
    if not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2:
        print("needs Linux and 2 CPUs (server on one, clients on the other); skipping")
        return
    print(f"Overload: servelab serve --model tiny (default limits: {LIMIT} in flight, {LIMIT} connections) on CPU 0; "
          f"wrk -t2 (keep-alive, --timeout 10s) and the probe (a new connection every {PROBE_EVERY_S * 1000:.0f} ms) "
          f"on CPU 1; {ROUNDS} rounds of {DURATION_S} s per level; load average {os.getloadavg()[0]:.1f}")
    own = os.sched_getaffinity(0)
    with ServerProcess(model="tiny", name="my-model") as server:
        wrk.pin(server.pid, SERVER_CPUS)
        os.sched_setaffinity(0, CLIENT_CPUS)
        try:
            runs, rss = _measure(server.url, server.pid)
        finally:
            os.sched_setaffinity(0, own)
    _table(runs, rss)
    print(f"  (goodput: 2xx answers/s, medians over rounds; capacity: goodput at the limit in the same round. "
          f"Targets: {TARGETS}.)")


if __name__ == "__main__":
    main()
