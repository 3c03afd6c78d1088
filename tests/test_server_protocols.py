"""Request parsing and reply formatting, without a server."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from servelab.server import protocols
from servelab.server.protocols import InputError


def test_flat_list_of_three_is_one_instance_and_strict_rows_work_too():
    flat, columnar = protocols.parse_tfserving(b'{"instances": [1.0, 2.0, 5.0]}')
    rows, _ = protocols.parse_tfserving(b'{"instances": [[1.0, 2.0, 5.0], [0, 0, 0]]}')
    assert not columnar and flat.shape == (1, 3) and rows.shape == (2, 3) and rows.dtype == np.float32


def test_columnar_and_named_inputs():
    x, columnar = protocols.parse_tfserving(b'{"inputs": {"x": [[1, 2, 5]]}}')
    assert columnar and x.tolist() == [[1, 2, 5]]
    x, _ = protocols.parse_tfserving(b'{"instances": [{"x": [1, 2, 5]}, {"x": [0, 0, 1]}]}')
    assert x.shape == (2, 3)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"", "empty"),
        (b'{"instances": [1, 2', "malformed JSON"),
        (b'{"instances": [NaN, 2, 3]}', "NaN"),
        (b'{"instances": [1e400, 2, 3]}', "Infinity"),
        pytest.param(
            b'{"instances": [1e39, 2, 3]}',
            "too large for float32",
            marks=pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning"),
        ),
        (b'[1, 2, 3]', "JSON object"),
        (b'{"instances": [[1, 2, 5]], "inputs": [[1, 2, 5]]}', "exactly one"),
        (b'{"rows": []}', "exactly one"),
        (b'{"instances": [1, 2]}', "exactly 3 numbers"),
        (b'{"instances": [[1, 2, 3, 4]]}', "wrong shape"),
        (b'{"instances": [[[1, 2, 3]]]}', "wrong shape"),
        (b'{"instances": [[1, 2, 3], [1, 2]]}', "different lengths"),
        (b'{"instances": [["a", 2, 3]]}', 'instances[0][0] = "a"'),
        (b'{"instances": [[1, true, 3]]}', "instances[0][1] = true"),
        (b'{"instances": [[1, 2, null]]}', "instances[0][2] = null"),
        (b'{"instances": []}', "empty batch"),
        (b'{"instances": [[]]}', "empty batch"),
        (b'{"instances": 3}', "must be a list"),
    ],
)
def test_tfserving_errors_say_what_was_wrong(body, words):
    with pytest.raises(InputError) as caught:
        protocols.parse_tfserving(body)
    assert caught.value.status == 400 and words in caught.value.message
    assert orjson.loads(caught.value.body()) == {"error": caught.value.message}


def test_oip_flat_and_nested_data_fp32_and_fp64():
    for data in ([1, 2, 5, 0, 0, 0], [[1, 2, 5], [0, 0, 0]]):
        for datatype in ("FP32", "FP64"):
            body = orjson.dumps({"id": "a", "inputs": [{"name": "x", "shape": [2, 3], "datatype": datatype, "data": data}]})
            x, request_id = protocols.parse_oip(body)
            assert x.shape == (2, 3) and x.dtype == np.float32 and request_id == "a"


@pytest.mark.parametrize(
    ("tensor", "words"),
    [
        ({"name": "y", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 5]}, "unknown input"),
        ({"name": "x", "shape": [1, 3], "datatype": "INT32", "data": [1, 2, 5]}, "FP32 or FP64"),
        ({"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 5, 6]}, "wrong shape"),
        ({"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [1, 2, 5]}, "needs 6"),
        ({"name": "x", "shape": [0, 3], "datatype": "FP32", "data": []}, "empty batch"),
        ({"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, "b", 5]}, "non-numeric"),
        ({"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 5], "parameters": {"binary_data_size": 12}}, "binary"),
    ],
)
def test_oip_errors_say_what_was_wrong(tensor, words):
    with pytest.raises(InputError, match=words):
        protocols.parse_oip(orjson.dumps({"inputs": [tensor]}))


def test_oip_unknown_requested_output():
    body = {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 5]}], "outputs": [{"name": "logit"}]}
    with pytest.raises(InputError, match="unknown output"):
        protocols.parse_oip(orjson.dumps(body))


def test_replies_are_rounded_to_six_significant_digits_the_same_way_at_any_batch_size():
    p = np.random.default_rng(0).random(200).astype(np.float32)
    p[:4] = [np.nextafter(np.float32(0.75), np.float32(0)), 1.0, 1e-8, 0.0]
    small = [v for chunk in np.split(p, 20) for v in protocols.display(chunk)]  # per-item branch
    large = protocols.display(p).tolist()  # vectorised branch
    assert small == large
    assert large[:4] == [0.75, 1.0, 1e-8, 0.0]
    assert protocols.tfserving_reply(np.array([0.74999994], np.float32), False) == b'{"predictions": [0.75]}'
    assert protocols.tfserving_reply(np.array([0.75, 0.5], np.float32), True) == b'{"outputs": [0.75, 0.5]}'


def test_oip_reply_echoes_the_id():
    reply = orjson.loads(protocols.oip_reply(np.array([0.75], np.float32), "m", "42"))
    assert reply == {
        "model_name": "m",
        "model_version": "1",
        "id": "42",
        "outputs": [{"name": "probability", "datatype": "FP32", "shape": [1], "data": [0.75]}],
    }
