"""How close is the servelab server to the least a Python model server can do?

The floor is a bare ASGI callable under uvicorn (uvloop + httptools, no access log): orjson in,
one onnxruntime session (1 thread), orjson out. No routing, no validation, no metrics, no
errors handled. servelab serves the same model on the same CPU, and `wrk` loads each with the
same connections, threads and duration, one after the other, alternating, in the same run.

    .venv/bin/python -m bench server        (part of `make bench`)
    .venv/bin/python -m bench.server floor --port 8600   (just the floor, to poke at by hand)
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

BODY = '{"instances": [[1.0, 2.0, 5.0]]}'
CONNECTIONS = 16
THREADS = 1  # wrk shares the 2 cores with the server: one wrk thread, one server process
DURATION_S = 10
WARMUP_S = 2
ROUNDS = 3


# -- the floor ----------------------------------------------------------------------------


def floor_app():
    """The minimal ASGI + onnxruntime model server: the yardstick, not a server to use."""
    import numpy as np
    import onnxruntime as ort
    import orjson

    from servelab import models

    session = ort.InferenceSession(str(models.path("tiny")), models.session_options(1), providers=["CPUExecutionProvider"])
    run = session.run

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        message = await receive()
        body = message.get("body", b"")
        while message.get("more_body"):
            message = await receive()
            body += message.get("body", b"")
        if scope["method"] == "GET":  # readiness probe for the bench
            reply = b"{}"
        else:
            x = np.array(orjson.loads(body)["instances"], dtype=np.float32).reshape(-1, 3)
            reply = orjson.dumps({"predictions": run(None, {"x": x})[0].tolist()})
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(reply))],
            }
        )
        await send({"type": "http.response.body", "body": reply})

    return app


def serve_floor(port: int) -> None:
    import uvicorn

    uvicorn.run(floor_app(), host="127.0.0.1", port=port, loop="uvloop", http="httptools",
                lifespan="off", access_log=False, log_level="warning")


# -- the comparison ----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Floor:
    """The floor in a child process, started and stopped like ServerProcess."""

    def __enter__(self):
        self.port = _free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.server", "floor", "--port", str(self.port)],
            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=2).read()
                self.url = f"http://127.0.0.1:{self.port}/v1/models/my-model:predict"
                return self
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError("the floor server exited before it answered") from None
                time.sleep(0.1)
        raise TimeoutError("the floor server did not answer within 60 s")

    def __exit__(self, *exc_info):
        self.process.terminate()
        self.process.wait(30)


def _wrk(wrk: str, script: str, url: str, duration_s: int) -> dict:
    """Run wrk; requests/s, p50/p99 in ms, and non-2xx count from its report."""
    out = subprocess.run(
        [wrk, f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{duration_s}s", "--latency", "-s", script, url],
        capture_output=True, text=True, check=True,
    ).stdout
    units = {"us": 0.001, "ms": 1.0, "s": 1000.0}

    def percentile(p: str) -> float:
        value, unit = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * units[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": percentile("50"),
        "p99_ms": percentile("99"),
        "errors": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else "",
    }


def main() -> None:
    from servelab.server import ServerProcess

    wrk = shutil.which("wrk")
    if wrk is None:
        print("wrk is not installed (Debian/Ubuntu: apt-get install wrk; macOS: brew install wrk); skipping")
        return
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(f"wrk.method = \"POST\"\nwrk.body = '{BODY}'\nwrk.headers[\"Content-Type\"] = \"application/json\"\n")
    print(f"model tiny, 1 onnxruntime thread; wrk -t{THREADS} -c{CONNECTIONS} -d{DURATION_S}s, POST {BODY}, "
          f"{ROUNDS} alternating rounds after a {WARMUP_S} s warm-up each; {os.cpu_count()} CPUs")
    runs: dict[str, list[dict]] = {"floor (raw ASGI)": [], "servelab": []}
    try:
        with _Floor() as floor, ServerProcess(model="tiny", name="my-model") as server:
            urls = {"floor (raw ASGI)": floor.url, "servelab": server.predict_url}
            for _ in range(ROUNDS):
                for label, url in urls.items():
                    _wrk(wrk, script.name, url, WARMUP_S)
                    runs[label].append(_wrk(wrk, script.name, url, DURATION_S))
    finally:
        os.unlink(script.name)
    print(f"{'server':<18}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}   per round req/s")
    summary = {}
    for label, results in runs.items():
        summary[label] = {k: statistics.median(r[k] for r in results) for k in ("rps", "p50_ms", "p99_ms")}
        s = summary[label]
        print(f"{label:<18}{s['rps']:>10.0f}{s['p50_ms']:>9.2f}{s['p99_ms']:>9.2f}"
              f"{sum(r['errors'] for r in results):>9}   {', '.join(str(round(r['rps'])) for r in results)}")
    ratios = [s["rps"] / f["rps"] for s, f in zip(runs["servelab"], runs["floor (raw ASGI)"])]
    print(f"servelab / floor requests/s: {statistics.median(ratios):.2f}x (median of rounds; per round: "
          f"{', '.join(f'{r:.2f}' for r in ratios)}; target >= 0.6x)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what")
    floor_parser = sub.add_parser("floor", help="serve the floor app")
    floor_parser.add_argument("--port", type=int, required=True)
    arguments = parser.parse_args()
    if arguments.what == "floor":
        serve_floor(arguments.port)
    else:
        main()
