"""The ASGI app in-process: readiness while draining, and how the runner reacts to SIGTERM and Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import signal

import pytest
import uvicorn

from servelab.server.app import ModelServer, Options
from servelab.server.run import _Uvicorn


@pytest.fixture(scope="module")
def app():
    return ModelServer(Options())


def asgi(app, method: str, path: str, body: bytes = b"") -> tuple[int, dict]:
    """One request straight into the ASGI app: (status, parsed JSON body)."""
    scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": "", "scheme": "http", "http_version": "1.1", "headers": [(b"host", b"test")],
             "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 1)}
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], json.loads(b"".join(m.get("body", b"") for m in sent[1:]))


def test_readiness_turns_false_while_draining_and_liveness_stays(app):
    assert asgi(app, "GET", "/v2/health/ready") == (200, {"ready": True})
    app.draining = True
    try:
        status, body = asgi(app, "GET", "/v2/health/ready")
        assert status == 503 and body["ready"] is False and "SIGTERM" in body["error"]
        assert asgi(app, "GET", "/v2/models/my-model/ready")[0] == 503
        assert asgi(app, "GET", "/v2/health/live")[0] == 200
        # Requests keep being answered while draining.
        assert asgi(app, "POST", "/v1/models/my-model:predict", b'{"instances": [1, 2, 5]}') == (200, {"predictions": [0.75]})
    finally:
        app.draining = False


def test_sigterm_turns_readiness_false_at_once_and_stops_only_after_the_drain_delay():
    app = ModelServer(Options(drain_delay=0.2))
    server = _Uvicorn(uvicorn.Config(app), app, sock=None)
    server.handle_exit(signal.SIGTERM, None)
    assert app.draining and not server.should_exit
    assert asyncio.run(server.on_tick(1)) is False  # still serving within the delay
    asyncio.run(asyncio.sleep(0.25))
    assert asyncio.run(server.on_tick(2)) is True and server.should_exit


def test_ctrl_c_stops_without_the_drain_delay():
    app = ModelServer(Options(drain_delay=60))
    server = _Uvicorn(uvicorn.Config(app), app, sock=None)
    server.handle_exit(signal.SIGINT, None)
    assert app.draining and server.should_exit


def test_versioned_paths_serve_the_same_model(app):
    assert asgi(app, "POST", "/v1/models/my-model/versions/1:predict", b'{"instances": [1, 2, 5]}')[1] == {"predictions": [0.75]}
    assert asgi(app, "POST", "/v1/models/my-model/versions/2:predict", b'{"instances": [1, 2, 5]}')[0] == 404


def test_a_body_that_never_arrives_is_a_408_not_an_empty_body(app):
    scope = {"type": "http", "method": "POST", "path": "/v1/models/my-model:predict", "headers": []}
    sent: list[dict] = []

    async def receive():
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 408
