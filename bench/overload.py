"""Does the server shed overload or collapse? Goodput and 503 latency at 3x and 10x its connection limit.

One `servelab serve --model tiny` with its default limits (--max-concurrency 100, and as many
connections) runs pinned to CPU 0; wrk and a probe run on CPU 1, as the issue measured it.
In each round wrk holds keep-alive connections open and sends as fast as answers come back:
first as many as the server's connection limit (its capacity: nothing is refused), then 3x
and 10x as many. A refused wrk connection reconnects at once, the worst case for a server.
Then the same 3x and 10x as clients that follow the protocol: wrk holds the limit (100
keep-alive connections, the capacity load) and the excess clients, from a process of their
own on CPU 1, each open a connection, send one prediction and read the answer; after a 503
they wait its Retry-After before trying again, after a 200 they go again.

wrk cannot split latency by status, and it times a request only once its connection is open.
So a probe, a new client every 20 ms, opens its own connection and sends one prediction; its
latency runs from the connect to the last byte, and is reported per status: what a client
arriving in the middle of the flood gets. RSS is read at the start, after a warm-up at the
limit (the baseline), and 3 s after the last flood.

    .venv/bin/python -m bench overload          (part of `make bench`)
"""

from __future__ import annotations

import asyncio
import multiprocessing
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
POLITE_LEVELS = (3, 10)  # all clients, in multiples of LIMIT: wrk at LIMIT, the rest honour Retry-After
ROUNDS = 2
DURATION_S = 8
PROBE_EVERY_S = 0.02
SERVER_CPUS, CLIENT_CPUS = {0}, {1}
P99_TARGET_MS = 5.0


def _targets(goodput_10x: float, p99_ms: dict[int, float], rss_change: float) -> str:
    def met(ok: bool) -> str:
        return "met" if ok else "NOT met"

    p99 = ", ".join(f"{level}x {p99_ms[level]:.1f} ms" for level in POLITE_LEVELS)
    return (f"goodput at 10x >= 0.8x capacity: {goodput_10x:.2f}x, {met(goodput_10x >= 0.8)}; "
            f"a new client's 503 p99 <= {P99_TARGET_MS:g} ms where the excess clients honour Retry-After: {p99}, "
            f"{met(max(p99_ms.values()) <= P99_TARGET_MS)}; RSS within 5% of its baseline: {rss_change:+.1%}, "
            f"{met(abs(rss_change) <= 0.05)}. Where they reconnect at once, a new client's 503 waits behind them "
            f"in the accept queue: Little's law, clients waiting / refusals per second, is printed beside it")


async def _request_once(host: str, port: int, request: bytes) -> tuple[int, float, float]:
    """(status, seconds from connect to the end of the response, its Retry-After or 1); status 0 for a failure."""
    start = time.perf_counter()
    retry_after = 1.0
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 10)
        try:
            writer.write(request)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await asyncio.wait_for(reader.readexactly(length), 10)
            status = int(head[9:12])
            if b"retry-after:" in head.lower():
                retry_after = float(head.lower().split(b"retry-after:")[1].split(b"\r\n")[0])
        finally:
            writer.close()
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError, IndexError):
        status = 0
    return status, time.perf_counter() - start, retry_after


async def _probe(host: str, port: int, request: bytes) -> list[tuple[int, float]]:
    """A new client every PROBE_EVERY_S from 0.5 s on (wrk has opened its connections) to 1 s before the end."""
    probes: list[asyncio.Task] = []
    await asyncio.sleep(0.5)
    finish = time.perf_counter() + DURATION_S - 1.0
    while time.perf_counter() < finish:
        probes.append(asyncio.create_task(_request_once(host, port, request)))
        await asyncio.sleep(PROBE_EVERY_S)
    return [(status, seconds) for status, seconds, _ in await asyncio.gather(*probes)]


async def _polite_clients(host: str, port: int, request: bytes, clients: int, until: float) -> dict[int, int]:
    """`clients` clients that honour Retry-After, their first tries spread over a second, until `until`."""
    counts = {200: 0, 503: 0, 0: 0}

    async def client(first_in: float) -> None:
        await asyncio.sleep(first_in)
        while time.monotonic() < until:
            status, _, retry_after = await _request_once(host, port, request)
            counts[status] = counts.get(status, 0) + 1
            if status != 200:  # a 503's Retry-After; after a failure, a second
                await asyncio.sleep(min(retry_after, max(until - time.monotonic(), 0)))

    await asyncio.gather(*(client(i / clients) for i in range(clients)))
    return counts


def _polite_process(host: str, port: int, request: bytes, clients: int, pipe: multiprocessing.connection.Connection) -> None:
    """The excess clients' own process: says it is ready, gets when to stop, sends back its counts."""
    pipe.send("ready")
    until = pipe.recv()
    pipe.send(asyncio.run(_polite_clients(host, port, request, clients, until)))


def _address(url: str) -> tuple[str, int, bytes]:
    """host, port and the whole request (one prediction, Connection: close) for a new client."""
    host, port = url.split("//")[1].split("/")[0].split(":")
    request = (f"POST /{url.split('/', 3)[3]} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(BODY)}\r\nConnection: close\r\n\r\n").encode() + BODY
    return host, int(port), request


async def _flood_with_probe(url: str, script: str, connections: int) -> tuple[dict, list[tuple[int, float]]]:
    """wrk at `connections` for DURATION_S, and the probe's (status, seconds) over the same time."""
    args = wrk.command(url, script, connections=connections, duration_s=DURATION_S, threads=2, timeout_s=10,
                       cpus=CLIENT_CPUS)
    process = await asyncio.create_subprocess_exec(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    probe = await _probe(*_address(url))
    out, err = await process.communicate()
    if process.returncode:
        raise RuntimeError(f"wrk failed: {err.decode()}")
    return wrk.parse(out.decode()), probe


def _polite_with_probe(url: str, script: str, level: int) -> tuple[dict, list[tuple[int, float]], dict[int, int]]:
    """wrk at LIMIT and (level - 1) x LIMIT clients that honour Retry-After, for DURATION_S, with the probe.

    Returns wrk's report, the probe's samples and the excess clients' counts by status.
    """
    host, port, request = _address(url)
    spawn = multiprocessing.get_context("spawn")  # a fresh interpreter, not a fork of this one's event loops
    pipe, theirs = spawn.Pipe()
    clients = spawn.Process(
        target=_polite_process, args=(host, port, request, (level - 1) * LIMIT, theirs))
    clients.start()
    pipe.recv()  # imported and ready
    pipe.send(time.monotonic() + DURATION_S)
    report, probe = asyncio.run(_flood_with_probe(url, script, LIMIT))
    counts = pipe.recv()
    clients.join()
    return report, probe, counts


def _percentiles_ms(samples: list[tuple[int, float]], status: int) -> str:
    seconds = [s for code, s in samples if code == status]
    if not seconds:
        return f"{'-':>17}"
    p50, p99 = np.percentile(seconds, [50, 99]) * 1000
    return f"{p50:>8.1f}{p99:>9.1f}"


def _measure(server_url: str, server_pid: int) -> tuple[dict[int, list], dict[int, list], dict[str, float]]:
    """Every level in every round, both kinds: wrk's reports with the probe's samples (and the excess
    clients' counts where they honour Retry-After), and RSS at three points."""
    url = f"{server_url}/v1/models/my-model:predict"
    server = psutil.Process(server_pid)
    rss = {"start": server.memory_info().rss}
    runs: dict[int, list] = {level: [] for level in LEVELS}
    polite: dict[int, list] = {level: [] for level in POLITE_LEVELS}
    with wrk.post_script(BODY) as script:
        wrk.run(url, script, connections=LIMIT, duration_s=3, threads=2, cpus=CLIENT_CPUS)  # warm-up
        time.sleep(2)
        rss["baseline"] = server.memory_info().rss
        for _ in range(ROUNDS):
            for level in LEVELS:
                runs[level].append(asyncio.run(_flood_with_probe(url, script, LIMIT * level)))
                rss[f"after {level}x"] = max(rss.get(f"after {level}x", 0), server.memory_info().rss)
            for level in POLITE_LEVELS:
                polite[level].append(_polite_with_probe(url, script, level))
    time.sleep(3)
    rss["3 s after the last flood"] = server.memory_info().rss
    return runs, polite, rss


def _goodput(report: dict) -> float:
    return (report["requests"] - report["non_2xx"]) / report["seconds"]


def _table(runs: dict[int, list], polite: dict[int, list], rss: dict[str, float]) -> None:
    capacity = [_goodput(r) for r, _ in runs[1]]
    print("  Excess clients that reconnect at once (wrk at 1x, 3x, 10x the limit), the worst case; Little's law: "
          "excess connections waiting in the accept queue / 503s per second")
    print(f"  {'wrk connections':<18}{'goodput/s':>10}{'vs capacity':>12}{'503/s':>8}{'wrk p50':>9}{'wrk p99':>9}"
          f"{'errors':>8}   new client: {'200 p50':>8}{'p99':>9}{'503 p50':>10}{'p99':>9}{'Little':>8}  (ms; n)")
    for level in LEVELS:
        reports = [report for report, _ in runs[level]]
        samples = [sample for _, probe in runs[level] for sample in probe]
        ratios = [_goodput(r) / c for r, c in zip(reports, capacity)]
        refused = statistics.median(r["non_2xx"] / r["seconds"] for r in reports)
        little = f"{(level - 1) * LIMIT / refused * 1000:>8.0f}" if level > 1 and refused else f"{'-':>8}"
        label = f"{LIMIT * level} ({level}x limit)" if level > 1 else f"{LIMIT} (the limit)"
        print(f"  {label:<18}{statistics.median(map(_goodput, reports)):>10.0f}{statistics.median(ratios):>11.2f}x"
              f"{refused:>8.0f}{statistics.median(r['p50_ms'] for r in reports):>9.1f}"
              f"{statistics.median(r['p99_ms'] for r in reports):>9.1f}"
              f"{sum(r['socket_errors'] for r in reports):>8}   {'':>12}{_percentiles_ms(samples, 200)} "
              f"{_percentiles_ms(samples, 503)}{little}  n={len(samples)}, failed {sum(1 for code, _ in samples if code == 0)}")
    print("  per-round goodput vs capacity: " + "; ".join(
        f"{level}x " + ", ".join(f"{_goodput(r) / c:.2f}" for (r, _), c in zip(runs[level], capacity))
        for level in LEVELS[1:]))
    print(f"  Excess clients that honour Retry-After: wrk holds the limit ({LIMIT} connections), the rest each send "
          "one prediction on a new connection and after a 503 wait its Retry-After")
    print(f"  {'all clients':<18}{'goodput/s':>10}{'vs capacity':>12}{'tries/s':>9}{'their 200':>10}{'failed':>8}"
          f"   new client: {'200 p50':>8}{'p99':>9}{'503 p50':>10}{'p99':>9}  (ms; n)")
    p99_ms = {}
    for level in POLITE_LEVELS:
        goodput = [_goodput(r) + counts[200] / DURATION_S for r, _, counts in polite[level]]
        ratios = [g / c for g, c in zip(goodput, capacity)]
        tries = statistics.median(sum(counts.values()) / DURATION_S for _, _, counts in polite[level])
        samples = [sample for _, probe, _ in polite[level] for sample in probe]
        refused = [seconds for code, seconds in samples if code == 503]
        p99_ms[level] = float(np.percentile(refused, 99) * 1000) if refused else float("nan")
        print(f"  {f'{LIMIT * level} ({level}x limit)':<18}{statistics.median(goodput):>10.0f}"
              f"{statistics.median(ratios):>11.2f}x{tries:>9.0f}{sum(c[200] for _, _, c in polite[level]):>10}"
              f"{sum(c[0] for _, _, c in polite[level]):>8}   {'':>12}{_percentiles_ms(samples, 200)} "
              f"{_percentiles_ms(samples, 503)}  n={len(samples)}, failed {sum(1 for code, _ in samples if code == 0)}")
    base = rss["baseline"]
    print("  RSS: " + ", ".join(f"{label} {value / 2**20:.1f} MB ({value / base - 1:+.1%})" for label, value in rss.items()))
    goodput_10x = statistics.median(_goodput(r) / c for (r, _), c in zip(runs[10], capacity))
    print(f"  (goodput: 2xx answers/s, medians over rounds; capacity: goodput at the limit in the same round; "
          f"tries/s: the excess clients' requests per second.)\n"
          f"  Targets: {_targets(goodput_10x, p99_ms, rss['3 s after the last flood'] / base - 1)}.")


def main() -> None:
    from servelab.server import ServerProcess

    if shutil.which("wrk") is None:
        print("wrk is not installed (Debian/Ubuntu: apt-get install wrk; macOS: brew install wrk); skipping")
        return
    if not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2:
        print("needs Linux and 2 CPUs (server on one, clients on the other); skipping")
        return
    print(f"Overload: servelab serve --model tiny (default limits: {LIMIT} in flight, {LIMIT} connections) on CPU 0; "
          f"wrk -t2 (keep-alive, --timeout 10s), the clients that honour Retry-After and the probe (a new connection "
          f"every {PROBE_EVERY_S * 1000:.0f} ms) on CPU 1; {ROUNDS} rounds of {DURATION_S} s per level; "
          f"load average {os.getloadavg()[0]:.1f}")
    own = os.sched_getaffinity(0)
    with ServerProcess(model="tiny", name="my-model") as server:
        wrk.pin(server.pid, SERVER_CPUS)
        os.sched_setaffinity(0, CLIENT_CPUS)
        try:
            runs, polite, rss = _measure(server.url, server.pid)
        finally:
            os.sched_setaffinity(0, own)
    _table(runs, polite, rss)


if __name__ == "__main__":
    main()
