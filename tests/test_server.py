"""The model server over real HTTP: the lesson's curl, a Triton client, the bad-input catalogue,
metadata, OpenAPI, metrics and headers. One tiny server serves the whole module."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from server_fixtures import call, metric
from tools import require_tool

from servelab.server import ServerProcess
from servelab.server.app import MAX_BODY_BYTES

LESSON_CURL = """curl -X POST http://localhost:8501/v1/models/my-model:predict -d '{"instances": [1.0, 2.0, 5.0]}'"""


@pytest.fixture(scope="module")
def server():
    with ServerProcess(model="tiny", name="my-model", env={"POD_NAME": "model-serving-abc12"}) as running:
        yield running


def test_lesson_curl_prints_exactly_the_prediction(server):
    curl = require_tool("curl")
    command = LESSON_CURL.replace("curl", curl, 1).replace(":8501", f":{server.port}")
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout == '{"predictions": [0.75]}'


def test_strict_rows_and_columnar_forms(server):
    rows = call("POST", server.predict_url, '{"instances": [[1.0, 2.0, 5.0], [1.0, 2.0, 5.0]]}')
    assert rows.status == 200 and rows.json() == {"predictions": [0.75, 0.75]}
    columns = call("POST", server.predict_url, '{"inputs": [[1.0, 2.0, 5.0]]}', {"Content-Type": "application/json"})
    assert columns.status == 200 and columns.json() == {"outputs": [0.75]}


def test_replica_and_server_timing_headers(server):
    reply = call("POST", server.predict_url, '{"instances": [1.0, 2.0, 5.0]}')
    assert reply.headers["x-servelab-replica"] == "model-serving-abc12"
    name, duration = reply.headers["server-timing"].split(";")
    assert name == "infer" and float(duration.removeprefix("dur=")) > 0
    assert call("GET", f"{server.url}/v2/health/live").headers["x-servelab-replica"] == "model-serving-abc12"


def test_triton_client_json_mode(server):
    from tritonclient.http import (
        InferenceServerClient,
        InferInput,
        InferRequestedOutput,
    )

    client = InferenceServerClient(url=server.url.removeprefix("http://"))
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("my-model")
        metadata = client.get_model_metadata("my-model")
        assert metadata["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 3]}]
        for datatype, dtype in (("FP32", np.float32), ("FP64", np.float64)):
            x = InferInput("x", [2, 3], datatype)
            x.set_data_from_numpy(np.array([[1.0, 2.0, 5.0], [0.0, 0.0, 0.0]], dtype=dtype), binary_data=False)
            result = client.infer(
                "my-model", [x], request_id="req-7", outputs=[InferRequestedOutput("probability", binary_data=False)]
            )
            assert result.get_response()["id"] == "req-7"
            assert result.as_numpy("probability") == pytest.approx([0.75, 0.288765], abs=1e-6)
        assert not client.is_model_ready("other-model")
    finally:
        client.close()


def _deep(levels: int, inner: str = "1") -> str:
    return "[" * levels + inner + "]" * levels


def _oip(**fields: str) -> str:
    """An OIP infer body whose top-level fields (JSON text) are added to a valid one-row tensor."""
    tensor = '{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 5]}'
    return "{" + ", ".join([f'"inputs": [{tensor}]', *(f'"{k}": {v}' for k, v in fields.items())]) + "}"


def _bad_inputs(server: ServerProcess) -> list[tuple[str, str, object, dict, int, str]]:
    """(method, url, body, headers, status, words the error must contain) for every case of the issue."""
    predict, infer, url = server.predict_url, server.infer_url, server.url
    oip = '{"inputs": [{"name": "x", "shape": [1, 3], "datatype": "%s", "data": %s}]}'
    return [
        # Wrong types where the protocol wants an object, a list, a string: 400, never a 500.
        ("POST", infer, _oip(parameters="1"), {}, 400, '"parameters" must be a JSON object'),
        ("POST", infer, _oip(parameters="[1]"), {}, 400, '"parameters" must be a JSON object'),
        ("POST", infer, _oip(parameters='"binary"'), {}, 400, '"parameters" must be a JSON object'),
        ("POST", infer, _oip(outputs="5"), {}, 400, '"outputs" must be a list'),
        ("POST", infer, _oip(outputs="true"), {}, 400, '"outputs" must be a list'),
        ("POST", infer, _oip(outputs='[{"name": "probability", "parameters": 7}]'), {}, 400, "must be a JSON object"),
        ("POST", infer, oip.replace('"%s"', "%s") % ('["FP32"]', "[1, 2, 5]"), {}, 400, "FP32 or FP64"),
        ("POST", infer, '{"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 5], '
                        '"parameters": 3}]}', {}, 400, "of an input must be a JSON object"),
        ("POST", infer, _oip(id="7"), {}, 400, '"id" must be a string'),
        ("POST", infer, _oip(id=_deep(1000)), {}, 400, '"id" must be a string'),
        # Nesting deep enough to break a recursive walk (or orjson's own limit): 400 too.
        ("POST", predict, '{"instances": %s}' % _deep(1000, "1.0, 2.0, 5.0"), {}, 400, "nested more than 32"),
        ("POST", predict, '{"instances": [[1, 2, 5], %s]}' % _deep(1000), {}, 400, "nested more than 32"),
        ("POST", infer, oip % ("FP32", _deep(1000)), {}, 400, "nested more than 32"),
        ("POST", infer, '{"inputs": [{"name": %s}]}' % _deep(1000), {}, 400, "unknown input"),
        ("POST", predict, '{"instances": %s}' % _deep(2000), {}, 400, "malformed JSON"),
        ("POST", predict, '{"instances": [1.0, 2.0', {}, 400, "malformed JSON"),
        ("POST", predict, '{"instances": [[1, 2, 5]], "inputs": [[1, 2, 5]]}', {}, 400, "got both"),
        ("POST", predict, '{"data": [[1, 2, 5]]}', {}, 400, "got neither"),
        ("POST", predict, '{"instances": [1.0, 2.0]}', {}, 400, "exactly 3 numbers"),
        ("POST", predict, '{"instances": [[1, 2, 5, 7]]}', {}, 400, "wrong shape"),
        ("POST", predict, '{"instances": [[1, 2, 5], [1, 2]]}', {}, 400, "different lengths"),
        ("POST", predict, '{"instances": [[1, "two", 5]]}', {}, 400, "non-numeric"),
        ("POST", predict, '{"instances": [[1, 2, NaN]]}', {}, 400, "NaN"),
        ("POST", predict, '{"instances": [[1, 2, Infinity]]}', {}, 400, "Infinity"),
        ("POST", predict, '{"instances": [[1, 2, 1e39]]}', {}, 400, "too large"),
        ("POST", predict, '{"instances": []}', {}, 400, "empty batch"),
        ("POST", predict, "", {}, 400, "body is empty"),
        ("POST", predict, b"x" * (MAX_BODY_BYTES + 1), {}, 413, "byte limit"),
        ("POST", f"{url}/v1/models/other-model:predict", '{"instances": [1, 2, 5]}', {}, 404, "'other-model' not found"),
        ("GET", f"{url}/v1/models/other-model", None, {}, 404, "'other-model' not found"),
        ("GET", f"{url}/v2/models/other-model/ready", None, {}, 404, "'other-model' not found"),
        ("POST", f"{url}/v2/models/other-model/infer", oip % ("FP32", "[1, 2, 5]"), {}, 404, "not found"),
        ("GET", predict, None, {}, 405, "send a POST"),
        ("PUT", infer, None, {}, 405, "send a POST"),
        ("POST", f"{url}/v2/health/ready", "{}", {}, 405, "not allowed"),
        ("GET", f"{url}/no/such/route", None, {}, 404, "no route"),
        ("POST", infer, oip % ("INT64", "[1, 2, 5]"), {}, 400, "FP32 or FP64"),
        ("POST", infer, oip % ("FP32", "[1, 2]"), {}, 400, "needs 3"),
        ("POST", infer, oip % ("FP32", "[1, null, 5]"), {}, 400, "non-numeric"),
        ("POST", infer, '{"inputs": []}', {}, 400, "one tensor"),
        ("POST", infer, b'{"inputs": []}\x00\x00\x80?', {"Inference-Header-Content-Length": "14"}, 400, "binary"),
    ]


def test_bad_input_catalogue_gets_clear_json_errors_and_the_server_keeps_answering(server):
    failures = []
    for method, url, body, headers, status, words in _bad_inputs(server):
        reply = call(method, url, body, headers)
        try:
            error = reply.json()
        except ValueError:
            error = None
        if reply.status != status or not isinstance(error, dict) or set(error) != {"error"} or words not in error["error"]:
            failures.append(f"{method} {url} {str(body)[:60]!r}: {reply.status} {reply.body[:200]!r}")
    assert not failures, "\n".join(failures)
    assert call("GET", server.predict_url).headers["allow"] == "POST"
    assert call("POST", server.predict_url, '{"instances": [1.0, 2.0, 5.0]}').json() == {"predictions": [0.75]}
    assert server.process.poll() is None


def test_tfserving_status_and_metadata(server):
    status = call("GET", f"{server.url}/v1/models/my-model").json()
    assert status["model_version_status"][0]["state"] == "AVAILABLE"
    signature = call("GET", f"{server.url}/v1/models/my-model/metadata").json()
    inputs = signature["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"]
    assert [d["size"] for d in inputs["x"]["tensor_shape"]["dim"]] == ["-1", "3"]


def test_oip_server_metadata_and_health(server):
    assert call("GET", f"{server.url}/v2").json()["name"] == "servelab"
    assert call("GET", f"{server.url}/v2/health/live").status == 200
    assert call("GET", f"{server.url}/v2/health/ready").json() == {"ready": True}
    assert call("GET", f"{server.url}/v2/models/my-model/ready").status == 200


def test_openapi_documents_every_route_including_the_fast_ones(server):
    spec = call("GET", f"{server.url}/openapi.json").json()
    paths = spec["paths"]
    for path in ("/v1/models/my-model:predict", "/v2/models/my-model/infer", "/v1/models/{model}", "/v2/health/ready"):
        assert path in paths, path
    for path in ("/v1/models/{model}", "/v1/models/{model}/metadata", "/v2/models/{model}", "/v2/models/{model}/ready",
                 "/v1/models/my-model:predict", "/v2/models/my-model/infer"):
        error = paths[path][next(iter(paths[path]))]["responses"]["404"]
        assert "error" in error["content"]["application/json"]["schema"]["properties"], path
    assert list(paths["/metrics"]["get"]["responses"]["200"]["content"]) == ["text/plain"]
    assert call("GET", f"{server.url}/metrics").headers["content-type"].startswith("text/plain")
    assert call("GET", f"{server.url}/docs").status == 200


def test_metrics_count_requests_by_endpoint_and_status(server):
    before = metric(server.url, "servelab_request_duration_seconds_count", 'endpoint="predict",status="200"')
    call("POST", server.predict_url, '{"instances": [[1, 2, 5], [1, 2, 5], [1, 2, 5]]}')
    call("POST", server.predict_url, '{"instances": [1, 2]}')
    after = metric(server.url, "servelab_request_duration_seconds_count", 'endpoint="predict",status="200"')
    assert after == before + 1
    assert metric(server.url, "servelab_request_duration_seconds_count", 'endpoint="predict",status="400"') >= 1
    assert metric(server.url, "servelab_batch_size_bucket", 'le="4.0"') >= 1
    assert metric(server.url, "servelab_inference_duration_seconds_count") >= 1
    assert metric(server.url, "servelab_requests_in_flight") == 0  # nothing is being predicted now
    assert metric(server.url, "process_cpu_seconds_total") > 0
