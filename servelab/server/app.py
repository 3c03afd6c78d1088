"""The model server as one ASGI app: a thin fast path for predictions, FastAPI for the rest.

Why two layers: a prediction on the tiny model takes about 10 us of model time, while a plain
FastAPI handler spends several times that on request objects, validation and dependency
injection. So the two hot routes (TF Serving predict, OIP infer) are plain ASGI functions:
read the body, orjson, numpy, onnxruntime (inline on the event loop with one worker, see
`inference`), write the reply. Every
other route (health, metadata, /metrics, /openapi.json, /docs) is a normal FastAPI route, where
clarity matters more than microseconds. Both share the error shape `{"error": "..."}`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from time import perf_counter

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException

import servelab
from servelab.core.models import INPUT_NAME, N_FEATURES, OUTPUT_NAME
from servelab.server import protocols
from servelab.server.admission import Admission
from servelab.server.faults import Stall
from servelab.server.inference import Inference
from servelab.server.metrics import CONTENT_TYPE, Metrics
from servelab.server.openapi import error_responses, prediction_paths
from servelab.server.protocols import InputError

MAX_BODY_BYTES = 4 * 1024 * 1024  # ~100k rows of 3 numbers; larger bodies get 413
DRAIN_BYTES = 64 * 1024 * 1024  # past this, a too-large body is not even read: the connection closes

Send = Callable[[dict], Awaitable[None]]
Receive = Callable[[], Awaitable[dict]]
Parse = Callable[[bytes, dict], tuple[np.ndarray, object]]  # body, scope -> (x, what the reply needs)
Format = Callable[[np.ndarray, object], bytes]


@dataclass
class Options:
    """What `servelab serve` is asked to do (the CLI flags, minus where to listen)."""

    model: str = "tiny"
    name: str = "my-model"
    threads: int = 1
    workers: int = 1
    max_concurrency: int = 100
    max_connections: int = 100
    batch_max_size: int = 0  # 0: no dynamic batching
    batch_max_delay_ms: float = 2.0
    grace_period: float = 30.0
    drain_delay: float = 3.0
    header_timeout: float = 5.0
    body_timeout: float = 10.0
    stall_every: float = 0.0  # 0: no stalls
    stall_for: float = 0.0


class ModelServer:
    """The ASGI app. `draining` turns readiness false (set on SIGTERM by the runner)."""

    def __init__(self, options: Options):
        self.options = options
        self.name = options.name
        self.admission = Admission(options.max_concurrency, options.max_connections)
        self.metrics = Metrics(self.admission)
        self.draining = False
        self.inference = Inference(
            options.model, options.threads, options.workers, self.metrics,
            batch_max_size=options.batch_max_size, batch_max_delay_s=options.batch_max_delay_ms / 1000,
            stall=Stall(options.stall_every, options.stall_for) if options.stall_every else None,
        )
        self._inline = self.inference.inline
        self._run, self._predict = self.inference.run, self.inference.predict
        predict = partial(self._handle, "predict", self._parse_tfserving, protocols.tfserving_reply)
        infer = partial(self._handle, "infer", self._parse_oip, self._oip_reply)
        self._hot = {}
        for version in ("", "/versions/1"):
            self._hot[f"/v1/models/{self.name}{version}:predict"] = predict
            self._hot[f"/v2/models/{self.name}{version}/infer"] = infer
        self.fastapi = _cold_app(self)

    async def __call__(self, scope: dict, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            handler = self._hot.get(path)
            if handler is not None and scope["method"] == "POST":
                await handler(scope, receive, send)
                return
            if _is_prediction_path(path):
                await self._not_here(scope, send)
                return
        await self.fastapi(scope, receive, send)

    # -- the hot path -------------------------------------------------------------------

    async def _handle(
        self, endpoint: str, parse: Parse, format_reply: Format, scope: dict, receive: Receive, send: Send
    ) -> None:
        """One prediction: body -> parse -> model -> reply, any failure -> {"error"}, then metrics."""
        start = perf_counter()
        try:
            message = await receive()
            body = message.get("body", b"")
            if message.get("more_body", False) or len(body) > MAX_BODY_BYTES or not body:
                body = await _read_rest(scope, receive, message)
            x, context = parse(body, scope)
            p, seconds = self._run(x) if self._inline else await self._predict(x)
            reply = format_reply(p, context)
            await send(_ok_start(reply, seconds))
            await send({"type": "http.response.body", "body": reply})
            status = 200
        except Exception as error:
            status = await _reply_error(send, error)
        self.metrics.request(endpoint, status, perf_counter() - start)

    @staticmethod
    def _parse_tfserving(body: bytes, scope: dict) -> tuple[np.ndarray, bool]:
        return protocols.parse_tfserving(body)

    @staticmethod
    def _parse_oip(body: bytes, scope: dict) -> tuple[np.ndarray, str | None]:
        try:
            return protocols.parse_oip(body)
        except InputError:
            if _header(scope, b"inference-header-content-length") is not None:  # Triton's binary extension
                raise InputError(
                    400, "binary tensor data is not supported; send JSON data (tritonclient: binary_data=False)"
                ) from None
            raise

    def _oip_reply(self, p: np.ndarray, request_id: str | None) -> bytes:
        return protocols.oip_reply(p, self.name, request_id)

    async def _not_here(self, scope: dict, send: Send) -> None:
        """A prediction path with the wrong method (405) or another model's name (404)."""
        path = scope["path"]
        if path.startswith("/v1/"):
            name = path.removeprefix("/v1/models/").removesuffix(":predict")
        else:
            name = path.removeprefix("/v2/models/").removesuffix("/infer")
        name = name.removesuffix("/versions/1")
        if name == self.name:
            error = InputError(405, f"{scope['method']} is not allowed on {path}; send a POST with a JSON body")
            await _reply_error(send, error, [(b"allow", b"POST")])
        else:
            await _reply_error(send, self.unknown_model(name))

    def unknown_model(self, name: str) -> InputError:
        return InputError(404, f"model {name!r} not found; this server serves {self.name!r}")


def _is_prediction_path(path: str) -> bool:
    return (path.startswith("/v1/models/") and path.endswith(":predict")) or (
        path.startswith("/v2/models/") and path.endswith("/infer")
    )


def _header(scope: dict, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


async def _read_rest(scope: dict, receive: Receive, message: dict) -> bytes:
    """The body when it came in several pieces or is too large (the handlers inline the usual case).

    A body over the limit is still read, up to DRAIN_BYTES, and thrown away: a client that
    sends its whole body before reading (most do) then sees the 413 instead of a reset.
    """
    declared = _header(scope, b"content-length")
    if declared is not None and int(declared) > DRAIN_BYTES:
        raise _too_large(int(declared), close=True)
    chunks, size = [], 0
    while True:
        if message["type"] != "http.request":
            raise InputError(408, "the client closed the connection, or was timed out, before its body arrived")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size <= MAX_BODY_BYTES:
            chunks.append(chunk)
        elif size > DRAIN_BYTES:
            raise _too_large(size, close=True)
        if not message.get("more_body", False):
            break
        message = await receive()
    if size > MAX_BODY_BYTES:
        raise _too_large(size, close=False)
    return b"".join(chunks)


def _too_large(size: int, close: bool) -> InputError:
    return InputError(
        413,
        f"request body of {size} bytes is over the {MAX_BODY_BYTES} byte limit; split the batch into smaller requests",
        ((b"connection", b"close"),) if close else (),
    )


def _ok_start(body: bytes, seconds: float) -> dict:
    return {
        "type": "http.response.start",
        "status": 200,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(body)),
            (b"server-timing", b"infer;dur=%.3f" % (seconds * 1000)),
        ],
    }


async def _reply_error(send: Send, error: Exception, headers: list | None = None) -> int:
    if not isinstance(error, InputError):  # a bug or a runtime failure: answer 500, keep serving
        error = InputError(500, f"internal error while predicting: {type(error).__name__}: {error}")
    body = error.body()
    extra = [*(headers or ()), *error.headers]
    await send(
        {
            "type": "http.response.start",
            "status": error.status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body)), *extra],
        }
    )
    await send({"type": "http.response.body", "body": body})
    return error.status


# -- the cold routes: FastAPI -----------------------------------------------------------


def _cold_app(server: ModelServer) -> FastAPI:
    app = FastAPI(
        title="servelab model server",
        version=servelab.__version__,
        description="TensorFlow Serving REST and Open Inference Protocol v2 for one ONNX model.",
    )
    name = server.name
    # Every route is `async def`: it runs on the event loop, never in FastAPI's thread pool, so
    # /metrics reads the counters from the same thread that writes them.

    _answer_errors_in_json(app)
    _tf_serving_routes(app, server)
    _oip_routes(app, server)

    @app.get("/metrics", summary="Prometheus metrics (text exposition format)", response_class=PlainTextResponse)
    async def metrics() -> Response:
        return Response(server.metrics.exposition(), media_type=CONTENT_TYPE)

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            schema["paths"].update(prediction_paths(name))
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi
    return app


def _known(server: ModelServer, model: str) -> None:
    if model != server.name:
        raise server.unknown_model(model)


def _answer_errors_in_json(app: FastAPI) -> None:
    """Every error, ours or FastAPI's, as `{"error": ...}` with a hint where one helps."""
    @app.exception_handler(InputError)
    async def input_error(request: Request, error: InputError) -> JSONResponse:
        return JSONResponse({"error": error.message}, status_code=error.status)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        message = {
            404: f"no route {request.url.path}; see /docs for the endpoints this server answers",
            405: f"{request.method} is not allowed on {request.url.path}; see /docs",
        }.get(error.status_code, str(error.detail))
        return JSONResponse({"error": message}, status_code=error.status_code, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        return JSONResponse({"error": f"invalid request: {problems}"}, status_code=400)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"error": f"internal error: {type(error).__name__}: {error}"}, status_code=500)


def _tf_serving_routes(app: FastAPI, server: ModelServer) -> None:
    """TF Serving's model status and signature, for the model this server holds."""
    name = server.name
    unknown = error_responses(404)

    @app.get("/v1/models/{model}", summary="TF Serving: model version status", responses=unknown)
    async def model_status(model: str) -> dict:
        _known(server, model)
        status = {"error_code": "OK", "error_message": ""}
        return {"model_version_status": [{"version": "1", "state": "AVAILABLE", "status": status}]}

    @app.get("/v1/models/{model}/metadata", summary="TF Serving: model signature", responses=unknown)
    async def model_signature(model: str) -> dict:
        _known(server, model)

        def tensor(tensor_name: str, dims: list[int]) -> dict:
            return {
                "dtype": "DT_FLOAT",
                "tensor_shape": {"dim": [{"size": str(d), "name": ""} for d in dims], "unknown_rank": False},
                "name": tensor_name,
            }

        signature = {
            "inputs": {INPUT_NAME: tensor(INPUT_NAME, [-1, N_FEATURES])},
            "outputs": {OUTPUT_NAME: tensor(OUTPUT_NAME, [-1])},
            "method_name": "tensorflow/serving/predict",
        }
        return {
            "model_spec": {"name": name, "signature_name": "", "version": "1"},
            "metadata": {"signature_def": {"signature_def": {"serving_default": signature}}},
        }


def _oip_routes(app: FastAPI, server: ModelServer) -> None:
    """The Open Inference Protocol's server, health and model metadata routes."""
    name = server.name
    unknown = error_responses(404)

    @app.get("/v2", summary="OIP: server metadata")
    async def server_metadata() -> dict:
        return {"name": "servelab", "version": servelab.__version__, "extensions": []}

    @app.get("/v2/health/live", summary="OIP: the process answers")
    async def live() -> dict:
        return {"live": True}

    @app.get("/v2/health/ready", summary="OIP: ready for traffic (false while draining after SIGTERM)",
             responses=error_responses(503))
    async def ready() -> JSONResponse:
        if server.draining:
            return JSONResponse({"ready": False, "error": "shutting down after SIGTERM; send to another replica"}, 503)
        return JSONResponse({"ready": True})

    @app.get("/v2/models/{model}", summary="OIP: model metadata", responses=unknown)
    async def model_metadata(model: str) -> dict:
        _known(server, model)
        return {
            "name": name,
            "versions": ["1"],
            "platform": "onnxruntime_onnx",
            "inputs": [{"name": INPUT_NAME, "datatype": "FP32", "shape": [-1, N_FEATURES]}],
            "outputs": [{"name": OUTPUT_NAME, "datatype": "FP32", "shape": [-1]}],
        }

    @app.get("/v2/models/{model}/ready", summary="OIP: model ready", responses=error_responses(404, 503))
    async def model_ready(model: str) -> JSONResponse:
        _known(server, model)
        if server.draining:
            return JSONResponse({"name": name, "ready": False, "error": "shutting down after SIGTERM"}, 503)
        return JSONResponse({"name": name, "ready": True})
