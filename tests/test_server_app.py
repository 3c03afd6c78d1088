"""The ASGI app in-process: readiness while draining, and the SIGTERM hook that sets it."""

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
        # Requests already on their way are still answered while draining.
        assert asgi(app, "POST", "/v1/models/my-model:predict", b'{"instances": [1, 2, 5]}') == (200, {"predictions": [0.75]})
    finally:
        app.draining = False


def test_sigterm_marks_the_app_draining_before_uvicorn_starts_to_close(app):
    server = _Uvicorn(uvicorn.Config(app), app)
    server.handle_exit(signal.SIGTERM, None)
    assert app.draining and server.should_exit
    app.draining = False


def test_versioned_paths_serve_the_same_model(app):
    assert asgi(app, "POST", "/v1/models/my-model/versions/1:predict", b'{"instances": [1, 2, 5]}')[1] == {"predictions": [0.75]}
    assert asgi(app, "POST", "/v1/models/my-model/versions/2:predict", b'{"instances": [1, 2, 5]}')[0] == 404


def test_admission_counts_predictions_until_they_answer():
    app = ModelServer(Options(max_concurrency=1))
    calls = []

    async def downstream(scope, receive, send):
        calls.append(app.in_flight)

    first = app.admit(downstream)
    assert app.in_flight == 1 and app.admit(downstream) == app.reject  # the second is over the limit
    asyncio.run(first({}, None, None))
    assert calls == [1] and app.in_flight == 0
    assert app.admit(downstream) != app.reject
