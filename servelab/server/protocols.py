"""The two wire protocols the server speaks, as pure functions from bytes to arrays and back.

- TensorFlow Serving REST (the lesson's curl): `{"instances": rows}` or `{"inputs": columns}`
  in, `{"predictions": [...]}` or `{"outputs": [...]}` out.
- Open Inference Protocol v2 (KServe, Triton): one input tensor "x" in, "probability" out.

Every problem with a request raises `InputError(status, message)`, whose message says what was
wrong and what to send instead; the server turns it into `{"error": message}`.

Predictions are rounded to 6 significant digits for display: the model computes in float32,
which carries about 7, so the last digit is noise (0.74999994 and 0.75000006 both print 0.75).
"""

from __future__ import annotations

import math
import re

import numpy as np
import orjson

from servelab.core.models import INPUT_NAME, N_FEATURES, OUTPUT_NAME

EXAMPLE = '{"instances": [[1.0, 2.0, 5.0]]}'
SIGNIFICANT_DIGITS = 6
# Valid inputs nest two levels (rows of numbers); the error paths that walk a body recursively
# stop here, long before Python's recursion limit (orjson itself refuses past 1024 levels).
MAX_DEPTH = 32
_NUMPY = orjson.OPT_SERIALIZE_NUMPY
_NAN_OR_INF = re.compile(rb"\b(NaN|-?Infinity|nan|-?inf)\b")


class InputError(Exception):
    """A request the server cannot answer: HTTP `status` and a message that says how to fix it."""

    def __init__(self, status: int, message: str, headers: tuple[tuple[bytes, bytes], ...] = ()):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers

    def body(self) -> bytes:
        return orjson.dumps({"error": self.message})


def load_json(body: bytes) -> object:
    """The parsed body, whatever the Content-Type (curl -d sends a form type)."""
    if not body.strip():
        raise InputError(400, f"the request body is empty; send JSON such as {EXAMPLE}")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        if _NAN_OR_INF.search(body) or "infinity" in str(error):
            raise InputError(
                400, "NaN and Infinity are not valid inputs (and not valid JSON); send finite numbers"
            ) from None
        raise InputError(400, f"malformed JSON ({error}); send JSON such as {EXAMPLE}") from None


def show(value: object, limit: int = 40) -> str:
    """A short JSON preview of a value from a request, for an error message (never recurses deeply)."""
    try:
        return orjson.dumps(value).decode()[:limit]
    except TypeError:  # orjson stops at 255 levels of nesting
        return "a value nested too deeply to show"


def _first_non_number(data: object, where: str, depth: int = 0) -> str | None:
    """Where the first value that is not a number sits, e.g. 'instances[0][1] = "abc"'."""
    if isinstance(data, list):
        if depth >= MAX_DEPTH:
            raise InputError(400, f'"{where}" is nested more than {MAX_DEPTH} lists deep; send rows of {N_FEATURES} numbers')
        for i, item in enumerate(data):
            found = _first_non_number(item, f"{where}[{i}]", depth + 1)
            if found:
                return found
        return None
    if isinstance(data, bool) or not isinstance(data, (int, float)):
        return f"{where} = {show(data)}"
    return None


def _numbers(data: object, where: str, body: bytes) -> np.ndarray:
    """A finite float32 array from nested JSON lists, or an InputError naming the bad value."""
    # JSON true/false would silently become 1.0/0.0; look for them only when the body has them.
    if b"true" in body or b"false" in body:
        _reject_non_number(data, where)
    try:
        x = np.array(data, dtype=np.float32)
    except (ValueError, TypeError):
        _reject_non_number(data, where)
        raise InputError(
            400, f'rows of "{where}" have different lengths; every row needs exactly {N_FEATURES} numbers'
        ) from None
    flat = x.ravel()
    # x.x is finite when every number is (cheaper than isfinite().all() on small arrays);
    # only when it is not (NaN, inf, or squares past float32) does the exact check run.
    if not math.isfinite(flat.dot(flat)) and not np.isfinite(flat).all():
        _reject_non_number(data, where)  # null becomes NaN in numpy: name it as what it was
        raise InputError(
            400, f'"{where}" holds NaN, Infinity or a number too large for float32; send finite numbers'
        )
    return x


def _reject_non_number(data: object, where: str) -> None:
    found = _first_non_number(data, where)
    if found:
        raise InputError(400, f"non-numeric value {found}; every feature must be a number")


def to_matrix(data: object, where: str, body: bytes) -> np.ndarray:
    """A float32 [N, 3] array from JSON rows; a flat list of exactly 3 numbers is one row."""
    if not isinstance(data, list):
        raise InputError(400, f'"{where}" must be a list of rows of {N_FEATURES} numbers, such as {EXAMPLE}')
    x = _numbers(data, where, body)
    if x.ndim == 1:
        if x.size == 0:
            raise InputError(400, f'empty batch: "{where}" has no rows; send at least one, such as {EXAMPLE}')
        if x.size != N_FEATURES:
            raise InputError(
                400,
                f"a flat list is read as one instance and needs exactly {N_FEATURES} numbers "
                f"(km, stops, rain); got {x.size}. For several rows send [[...], [...]]",
            )
        x = x.reshape(1, N_FEATURES)
    elif x.ndim != 2 or x.shape[1] != N_FEATURES:
        if x.ndim == 2 and x.shape[1] == 0:
            raise InputError(400, f'empty batch: the rows of "{where}" are empty; send rows of {N_FEATURES} numbers')
        shape = list(x.shape)
        raise InputError(
            400, f'wrong shape {shape} for "{where}": the model takes rows of {N_FEATURES} numbers, shape [N, {N_FEATURES}]'
        )
    return x


def parse_tfserving(body: bytes) -> tuple[np.ndarray, bool]:
    """(x [N, 3], columnar) from a TF Serving predict body; columnar means reply with "outputs"."""
    request = load_json(body)
    if not isinstance(request, dict):
        raise InputError(400, f"the body must be a JSON object such as {EXAMPLE}")
    has_rows, has_columns = "instances" in request, "inputs" in request
    if has_rows == has_columns:
        which = "both" if has_rows else "neither"
        raise InputError(
            400, f'send exactly one of "instances" (rows) or "inputs" (columns); got {which}. Example: {EXAMPLE}'
        )
    where = "instances" if has_rows else "inputs"
    data = request[where]
    if isinstance(data, dict):  # named input: {"inputs": {"x": [[...]]}}
        if list(data) != [INPUT_NAME]:
            raise InputError(400, f'the model has one input named "{INPUT_NAME}"; got {sorted(data)}')
        data = data[INPUT_NAME]
    elif isinstance(data, list) and data and isinstance(data[0], dict):  # rows of named inputs
        if any(not isinstance(row, dict) or list(row) != [INPUT_NAME] for row in data):
            raise InputError(400, f'each named instance must be {{"{INPUT_NAME}": [f1, f2, f3]}}')
        data = [row[INPUT_NAME] for row in data]
    return to_matrix(data, where, body), has_columns


def display(p: np.ndarray) -> list[float] | np.ndarray:
    """`p` rounded to 6 significant digits (float32 carries about 7), ready for orjson."""
    if p.size <= 64:  # Per-item formatting is the faster of the two for small batches.
        return [float(f"{v:.6g}") for v in p.tolist()]
    p = p.astype(np.float64)
    with np.errstate(divide="ignore"):
        exponent = np.floor(np.log10(np.abs(p)))
    exponent[~np.isfinite(exponent)] = 0
    scale = 10.0 ** (SIGNIFICANT_DIGITS - 1 - exponent)
    return np.round(p * scale) / scale


def tfserving_reply(p: np.ndarray, columnar: bool) -> bytes:
    """`{"predictions": [...]}` (or "outputs"), spaced like the lesson: {"predictions": [0.75]}."""
    values = orjson.dumps(display(p), option=_NUMPY).replace(b",", b", ")
    return (b'{"outputs": ' if columnar else b'{"predictions": ') + values + b"}"


OIP_DATATYPES = {"FP32": np.float32, "FP64": np.float64}


def _object_or_none(value: object, what: str, example: str) -> dict:
    """`value` if it is a JSON object, {} if absent; a 400 naming `what` otherwise."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError(400, f'{what} must be a JSON object such as {example}; got {show(value)}')
    return value


def _check_binary(parameters: dict) -> None:
    if parameters.get("binary_data_size") is not None:
        raise InputError(400, "binary tensor data is not supported; send JSON data (tritonclient: binary_data=False)")


def _check_outputs(outputs: object) -> None:
    """Requested outputs: absent, or a list of {"name": "probability", ...} objects."""
    if outputs is None:
        return
    if not isinstance(outputs, list):
        raise InputError(400, f'"outputs" must be a list such as [{{"name": "{OUTPUT_NAME}"}}]; got {show(outputs)}')
    for output in outputs:
        if not isinstance(output, dict) or output.get("name") != OUTPUT_NAME:
            raise InputError(400, f'unknown output {show(output)}; the model has one output named "{OUTPUT_NAME}"')
        _object_or_none(output.get("parameters"), '"parameters" of an output', '{"binary_data": false}')


def parse_oip(body: bytes) -> tuple[np.ndarray, str | None]:
    """(x [N, 3], id) from an Open Inference Protocol v2 infer body (JSON tensors, FP32 or FP64)."""
    request = load_json(body)
    if not isinstance(request, dict):
        raise InputError(400, 'the body must be a JSON object with "inputs": [{"name": "x", ...}]')
    request_id = request.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InputError(400, f'"id" must be a string, such as "42"; got {show(request_id)}')
    _check_binary(_object_or_none(request.get("parameters"), '"parameters"', '{"binary_data_output": false}'))
    inputs = request.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise InputError(
            400,
            f'"inputs" must be a list with one tensor: [{{"name": "{INPUT_NAME}", "shape": [N, {N_FEATURES}], '
            '"datatype": "FP32", "data": [...]}]',
        )
    tensor = inputs[0]
    if tensor.get("name") != INPUT_NAME:
        raise InputError(400, f'unknown input {show(tensor.get("name"))}; the model has one input named "{INPUT_NAME}"')
    _check_binary(_object_or_none(tensor.get("parameters"), '"parameters" of an input', '{"binary_data_size": 12}'))
    datatype = tensor.get("datatype")
    if not isinstance(datatype, str) or datatype not in OIP_DATATYPES:
        raise InputError(400, f"datatype {show(datatype)} is not accepted; send FP32 or FP64")
    shape = tensor.get("shape")
    if (
        not isinstance(shape, list)
        or len(shape) != 2
        or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape)
        or shape[1] != N_FEATURES
        or shape[0] < 0
    ):
        raise InputError(400, f'wrong shape {show(shape)} for input "{INPUT_NAME}"; send [N, {N_FEATURES}]')
    if shape[0] == 0:
        raise InputError(400, f"empty batch: shape {shape} has no rows; send at least one")
    data = tensor.get("data")
    if not isinstance(data, list):
        raise InputError(400, '"data" must be a list of numbers (flat, row-major, or nested)')
    x = _numbers(data, "data", body)
    if x.size != math.prod(shape):
        raise InputError(400, f'"data" has {x.size} numbers but shape {shape} needs {math.prod(shape)}')
    _check_outputs(request.get("outputs"))
    return x.reshape(shape), request_id


def oip_reply(p: np.ndarray, model_name: str, request_id: str | None) -> bytes:
    """An OIP v2 infer response with the request's id echoed."""
    reply = {"model_name": model_name, "model_version": "1"}
    if request_id is not None:
        reply["id"] = request_id
    reply["outputs"] = [{"name": OUTPUT_NAME, "datatype": "FP32", "shape": [int(p.shape[0])], "data": display(p)}]
    return orjson.dumps(reply, option=_NUMPY)
