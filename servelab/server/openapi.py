"""OpenAPI for the two prediction routes, which bypass FastAPI's router and so its schema generator.

FastAPI documents the other routes itself; `/openapi.json` merges these in. `error_responses`
gives those routes the same documented error shape.
"""

from __future__ import annotations

from servelab.core.models import INPUT_NAME, N_FEATURES, OUTPUT_NAME

_ERROR = {
    "description": "what was wrong and what to send instead",
    "content": {
        "application/json": {
            "schema": {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
        }
    },
}
_FAILURES = {code: _ERROR for code in ("400", "404", "405", "408", "413", "503")}


def error_responses(*codes: int) -> dict:
    """FastAPI `responses=` documenting `{"error": "..."}` for each of `codes`."""
    return {code: _ERROR for code in codes}
_ROW = {"type": "array", "items": {"type": "number"}, "minItems": N_FEATURES, "maxItems": N_FEATURES}
_ROWS_OR_ONE_ROW = {"oneOf": [{"type": "array", "items": _ROW}, _ROW]}


def _json(schema: dict | None = None, example: object = None) -> dict:
    content: dict = {}
    if schema is not None:
        content["schema"] = schema
    if example is not None:
        content["example"] = example
    return {"application/json": content}


def prediction_paths(name: str) -> dict:
    """The `paths` entries of TF Serving predict and OIP infer for model `name`."""
    tensor = {"name": INPUT_NAME, "shape": [1, N_FEATURES], "datatype": "FP32", "data": [1.0, 2.0, 5.0]}
    output = {"name": OUTPUT_NAME, "datatype": "FP32", "shape": [1], "data": [0.75]}
    return {
        f"/v1/models/{name}:predict": {
            "post": {
                "summary": 'TF Serving: predict (rows in "instances" or columns in "inputs")',
                "description": "Any Content-Type is read as JSON. A flat list of 3 numbers is one instance. "
                "Predictions are rounded to 6 significant digits.",
                "requestBody": {
                    "required": True,
                    "content": _json(
                        {"type": "object", "properties": {"instances": _ROWS_OR_ONE_ROW, "inputs": _ROWS_OR_ONE_ROW}},
                        {"instances": [[1.0, 2.0, 5.0]]},
                    ),
                },
                "responses": {
                    "200": {"description": "one probability per row", "content": _json(example={"predictions": [0.75]})},
                    **_FAILURES,
                },
            }
        },
        f"/v2/models/{name}/infer": {
            "post": {
                "summary": "Open Inference Protocol v2: infer (JSON tensors, FP32 or FP64)",
                "requestBody": {
                    "required": True,
                    "content": _json(
                        {
                            "type": "object",
                            "required": ["inputs"],
                            "properties": {"id": {"type": "string"}, "inputs": {"type": "array"}, "outputs": {"type": "array"}},
                        },
                        {"id": "1", "inputs": [tensor]},
                    ),
                },
                "responses": {
                    "200": {
                        "description": "the probability tensor, the request's id echoed",
                        "content": _json(example={"model_name": name, "model_version": "1", "id": "1", "outputs": [output]}),
                    },
                    **_FAILURES,
                },
            }
        },
    }
