"""How close is the servelab server to the least a Python model server can do?

- floor: a bare ASGI callable under uvicorn (uvloop + httptools, no access log): orjson in, one
  onnxruntime session (1 thread, its public `run`), orjson out. No routing, no validation, no
  metrics, no error handling. The yardstick, not a server to use.
- plain FastAPI: the usual first attempt, a Pydantic body and an `async def` handler returning
  a dict (FastAPI's standard-json response), same uvicorn settings, same session.
- servelab: `servelab serve --model tiny` with its defaults.

`wrk` loads each with the same connections, threads and duration, one after the other, in
alternating rounds, in the same run. Then, to show where the time goes, each app is called
directly as an ASGI function (no HTTP, no sockets) and its CPU time per request is measured.
Last, the model family's inference cost per call (onnxruntime, 1 thread).

    .venv/bin/python -m bench server                          (part of `make bench`)
    .venv/bin/python -m bench.server serve floor --port 8600  (one yardstick, to poke at by hand)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from bench import wrk

if TYPE_CHECKING:
    import onnxruntime as ort
    from fastapi import FastAPI

    from servelab.server.app import Receive, Send

    App = Callable[[dict, Receive, Send], Awaitable[None]]  # an ASGI app, as uvicorn calls it

BODY = b'{"instances": [[1.0, 2.0, 5.0]]}'
PATH = "/v1/models/my-model:predict"
CONNECTIONS = 16
THREADS = 1  # wrk shares the 2 cores with the server: one wrk thread, one server process
DURATION_S = 5
WARMUP_S = 1
# Rounds: each server in every position twice (6 for 3 servers), short, so that other programs'
# load drifts less within a round than between rounds.
ROOT = Path(__file__).resolve().parent.parent


# -- the yardsticks -----------------------------------------------------------------------


def _session() -> ort.InferenceSession:
    import onnxruntime as ort

    from servelab.core import models

    return ort.InferenceSession(str(models.path("tiny")), models.session_options(1), providers=["CPUExecutionProvider"])


def floor_app() -> App:
    """The minimal ASGI + onnxruntime model server."""
    import numpy as np
    import orjson

    run = _session().run

    async def app(scope: dict, receive: Receive, send: Send) -> None:
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


def fastapi_app() -> FastAPI:
    """A plain FastAPI predict handler, as tutorials write it."""
    import numpy as np
    from fastapi import FastAPI
    from pydantic import BaseModel

    run = _session().run
    app = FastAPI()

    class Request(BaseModel):
        instances: list[list[float]]

    @app.get("/")
    async def ready() -> dict:
        return {}

    async def predict(request: Request) -> dict:
        x = np.array(request.instances, dtype=np.float32)
        return {"predictions": run(None, {"x": x})[0].tolist()}

    # Annotations set as objects: this module's `from __future__ import annotations` would turn
    # them into strings that FastAPI cannot resolve for a class defined inside a function.
    predict.__annotations__ = {"request": Request, "return": dict}
    app.post(PATH)(predict)
    return app


YARDSTICKS = {"floor": floor_app, "fastapi": fastapi_app}


def serve_yardstick(which: str, port: int) -> None:
    import uvicorn

    uvicorn.run(YARDSTICKS[which](), host="127.0.0.1", port=port, loop="uvloop", http="httptools",
                lifespan="off", access_log=False, log_level="warning")


class _Yardstick:
    """A yardstick app in a child process, for as long as the `with` block."""

    def __init__(self, which: str):
        self.which = which

    def __enter__(self):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.process = subprocess.Popen([sys.executable, "-m", "bench.server", "serve", self.which, "--port", str(port)],
                                        cwd=ROOT, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read()
                self.predict_url = f"http://127.0.0.1:{port}{PATH}"
                return self
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError(f"the {self.which} server exited before it answered") from None
                time.sleep(0.1)
        raise TimeoutError(f"the {self.which} server did not answer within 60 s")

    def __exit__(self, *exc_info):
        self.process.terminate()
        self.process.wait(30)


# -- measuring ----------------------------------------------------------------------------


def _check_answer(url: str) -> None:
    """Refuse to time a server that does not answer the lesson's row correctly."""
    request = urllib.request.Request(url, data=BODY, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        answer = json.loads(response.read())["predictions"][0]
    if abs(answer - 0.75) > 1e-6:
        raise AssertionError(f"{url} answered {answer}, not 0.75")


def _wrk(script: str, url: str, duration_s: int, pid: int) -> dict:
    """Run wrk; requests/s, p50/p99 in ms, non-2xx answers, and the server's CPU time per request."""
    server = psutil.Process(pid)
    cpu_before = sum(server.cpu_times()[:2])
    report = wrk.run(url, script, connections=CONNECTIONS, duration_s=duration_s, threads=THREADS)
    cpu_s = sum(server.cpu_times()[:2]) - cpu_before
    return {**report, "errors": report["non_2xx"] + report["socket_errors"],
            "cpu_us": cpu_s / max(report["requests"], 1) * 1e6}


def _http_table() -> None:
    from servelab.server import ServerProcess

    print(f"HTTP: wrk -t{THREADS} -c{CONNECTIONS} -d{DURATION_S}s --latency, POST {BODY.decode()}, model tiny, "
          f"1 onnxruntime thread, 6 rounds in rotating order (each run after a {WARMUP_S} s warm-up); "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    runs: dict[str, list[dict]] = {"floor (raw ASGI)": [], "servelab": [], "plain FastAPI": []}
    with wrk.post_script(BODY) as script, _Yardstick("floor") as floor, \
            ServerProcess(model="tiny", name="my-model") as server, _Yardstick("fastapi") as plain:
        targets = {"floor (raw ASGI)": (floor.predict_url, floor.process.pid),
                   "servelab": (server.predict_url, server.pid),
                   "plain FastAPI": (plain.predict_url, plain.process.pid)}
        for url, _ in targets.values():
            _check_answer(url)
        for order in _rotations(list(targets)):
            for label in order:
                url, pid = targets[label]
                _wrk(script, url, WARMUP_S, pid)
                runs[label].append(_wrk(script, url, DURATION_S, pid))
    floor_rounds = runs["floor (raw ASGI)"]
    print(f"  {'server':<18}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'errors':>8}{'vs floor':>10}{'CPU/req':>10}"
          "   per-round req/s ratio")
    for label, results in runs.items():
        ratios = [r["rps"] / f["rps"] for r, f in zip(results, floor_rounds)]
        median = {k: statistics.median(r[k] for r in results) for k in ("rps", "p50_ms", "p99_ms", "cpu_us")}
        print(f"  {label:<18}{median['rps']:>8.0f}{median['p50_ms']:>8.2f}{median['p99_ms']:>8.2f}"
              f"{sum(r['errors'] for r in results):>8}{statistics.median(ratios):>9.2f}x"
              f"{median['cpu_us']:>8.0f}us   {', '.join(f'{r:.2f}' for r in ratios)}")
    print("  (medians over rounds. vs floor: requests/s over the floor's in the same round; the target for\n"
          "   servelab is >= 0.6x. CPU/req: the server process's CPU time per answered request.)")


def _rotations(labels: list[str]) -> Iterator[list[str]]:
    """Each label in every position in turn: drifting machine load and run order touch all alike."""
    for i in range(2 * len(labels)):
        k = i % len(labels)
        yield labels[k:] + labels[:k]


def _cpu_us_per_request(app: App, n: int = 2000) -> float:
    """CPU time of one request through `app` as a plain ASGI call: the app's own cost, no HTTP."""

    async def receive() -> dict:
        return {"type": "http.request", "body": BODY, "more_body": False}

    async def send(message: dict) -> None:
        pass

    async def many() -> None:
        for _ in range(n):
            await app(SCOPE, receive, send)

    start = time.process_time()
    asyncio.run(many())
    return (time.process_time() - start) / n * 1e6


def _app_only(apps: dict[str, tuple[App, list]]) -> dict[str, float]:
    """Best CPU us per request of each (app, patches), measured interleaved and rotated."""
    times: dict[str, list[float]] = {label: [] for label in apps}
    for order in _rotations(list(apps)):
        for label in order:
            app, patches = apps[label]
            for patch in patches:
                patch.start()
            try:
                times[label].extend(_cpu_us_per_request(app) for _ in range(3))
            finally:
                for patch in patches:
                    patch.stop()
    return {label: min(values) for label, values in times.items()}


SCOPE = {"type": "http", "method": "POST", "path": PATH, "raw_path": PATH.encode(), "query_string": b"",
         "root_path": "", "scheme": "http", "http_version": "1.1", "server": ("127.0.0.1", 8501),
         "client": ("127.0.0.1", 1), "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                                                  (b"content-length", b"%d" % len(BODY))]}
APP_ONLY = "min over runs of 2000, interleaved and rotated"


def _app_table() -> None:
    from servelab.server.app import ModelServer, Options

    best = _app_only({"floor (raw ASGI)": (floor_app(), []), "servelab": (ModelServer(Options()), []),
                      "plain FastAPI": (fastapi_app(), [])})
    print(f"App only: CPU time per request, the app called directly, no sockets or HTTP parsing ({APP_ONLY})")
    for label, us in best.items():
        print(f"  {label:<18}{us:>8.1f} us")


def _feature_table() -> None:
    """What each part of servelab's hot path costs: the app-only time with that part taken out."""
    from unittest import mock

    import numpy as np
    import orjson

    from servelab.server import protocols
    from servelab.server.app import ModelServer, Options

    server = ModelServer(Options())
    session_run = server.inference.model.session.run

    def bare_parse(body: bytes) -> tuple:
        return np.array(orjson.loads(body)["instances"], dtype=np.float32).reshape(-1, 3), False

    best = _app_only({
        "as served": (server, []),
        "without metrics": (server, [mock.patch.object(server.metrics, "request", lambda *a: None),
                                     mock.patch.object(server.metrics, "inference", lambda *a: None)]),
        "without 6-digit rounding": (server, [mock.patch.object(protocols, "display", lambda p: p.tolist())]),
        "without input checks": (server, [mock.patch.object(protocols, "parse_tfserving", bare_parse)]),
        "with ort's public run": (server, [mock.patch.object(server.inference, "_model_run",
                                                             lambda x: session_run(["probability"], {"x": x})[0])]),
    })
    served = best["as served"]
    print(f"servelab's hot path, part by part: app-only CPU time with one part changed ({APP_ONLY})")
    for label, us in best.items():
        change = "" if label == "as served" else f"   ({us - served:+.1f} us)"
        print(f"  {label:<26}{us:>8.1f} us{change}")


def _model_table() -> None:
    from servelab.core.models import MODEL_NAMES, Model, path

    print("Models: onnxruntime CPU time per call, 1 intra-op thread (min of 5 repeats)")
    print(f"  {'model':<8}{'size':>10}{'batch 1':>12}{'x tiny':>8}{'batch 64':>12}{'per row':>10}")
    tiny = None
    for name in MODEL_NAMES:
        model = Model(name)
        costs = [model.seconds_per_call(batch, budget_s=0.3) * 1e6 for batch in (1, 64)]
        tiny = tiny or costs[0]
        print(f"  {name:<8}{path(name).stat().st_size / 1e6:>8.2f}MB{costs[0]:>10.1f}us{costs[0] / tiny:>7.0f}x"
              f"{costs[1]:>10.1f}us{costs[1] / 64:>8.1f}us")


def main() -> None:
    if shutil.which("wrk") is None:
        print("wrk is not installed (Debian/Ubuntu: apt-get install wrk; macOS: brew install wrk); "
              "skipping the HTTP comparison")
    else:
        _http_table()
    _app_table()
    _feature_table()
    _model_table()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what")
    serve_parser = sub.add_parser("serve", help="serve one yardstick app")
    serve_parser.add_argument("which", choices=YARDSTICKS)
    serve_parser.add_argument("--port", type=int, required=True)
    arguments = parser.parse_args()
    if arguments.what == "serve":
        serve_yardstick(arguments.which, arguments.port)
    else:
        main()
