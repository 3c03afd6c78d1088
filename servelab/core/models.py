"""The model family the labs serve: tiny, medium and large, built from code.

All three answer the same question, with the same three features, so that any of them can be
swapped into a lab and only the cost of inference changes:

    Will this bike-courier delivery arrive late?
    features: [km still to ride, stops before this one, rain in mm/h]
    output:   probability that the parcel arrives late

- `tiny` is a logistic regression a dispatcher could write on a napkin: every km adds 0.4 to
  the log-odds, every stop ahead 0.3, every mm/h of rain 0.2. The intercept is set so that
  the lesson's row [1.0, 2.0, 5.0] (1 km, 2 stops, 5 mm/h) scores exactly 0.75: the log-odds
  there are ln 3.
- `medium` and `large` add a ReLU network (two hidden layers of 1024 and of 2048 units) that
  nudges tiny's log-odds with feature interactions. The nudge is zero at the lesson's row, so
  all three models answer 0.75 there and differ elsewhere. Their weights are drawn from a
  seeded generator: they are stand-ins for a trained network of that size, whose CPU cost
  (about 10x and 100x+ tiny's per single-row request) is what the labs measure.

The ONNX files are built deterministically (pinned opset and IR version, fixed seeds,
deterministic serialisation), so a rebuild is byte-identical, and cached on first use
(`path()`): the large model is 16 MB, too big to keep in git and quick to rebuild.
"""

from __future__ import annotations

import hashlib
import math
import os
import pathlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import onnx
    import onnxruntime as ort
    import pandas as pd

MODEL_NAMES = ("tiny", "medium", "large")
N_FEATURES = 3
INPUT_NAME = "x"
OUTPUT_NAME = "probability"
OPSET = 17
IR_VERSION = 8

# The lesson's row and its answer.
EXAMPLE_ROW = (1.0, 2.0, 5.0)
EXAMPLE_PROBABILITY = 0.75

# tiny: log-odds per km, per stop ahead, per mm/h of rain.
TINY_WEIGHTS = (0.4, 0.3, 0.2)
# medium/large: hidden layer widths and the seed of their weights.
HIDDEN = {"medium": ((1024, 1024), 1), "large": ((2048, 2048), 2)}


def _tiny_intercept() -> float:
    """The intercept that puts the lesson's row at log-odds ln 3, i.e. probability 0.75."""
    logit = math.log(EXAMPLE_PROBABILITY / (1 - EXAMPLE_PROBABILITY))
    return logit - sum(w * x for w, x in zip(TINY_WEIGHTS, EXAMPLE_ROW))


def _hidden_layers(name: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """Seeded ReLU layers (He-scaled, so activations neither vanish nor blow up)."""
    widths, seed = HIDDEN[name]
    rng = np.random.default_rng(seed)
    layers = []
    fan_in = N_FEATURES
    for width in (*widths, 1):
        scale = math.sqrt(2.0 / fan_in) if width > 1 else 0.5 / math.sqrt(fan_in)
        weights = (rng.standard_normal((fan_in, width)) * scale).astype(np.float32)
        bias = (rng.standard_normal(width) * 0.1).astype(np.float32)
        layers.append((weights, bias))
        fan_in = width
    return layers


def _residual_at(layers: list[tuple[np.ndarray, np.ndarray]], row: tuple[float, ...]) -> float:
    """The network's nudge at one row, computed in float64 from the float32 weights."""
    h = np.asarray([row], dtype=np.float64)
    for i, (weights, bias) in enumerate(layers):
        h = h @ weights.astype(np.float64) + bias
        if i < len(layers) - 1:
            h = np.maximum(h, 0.0)
    return float(h[0, 0])


def build(name: str) -> bytes:
    """The ONNX bytes of model `name`: input "x" float32 [N, 3], output "probability" float32 [N]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    f32 = np.float32
    initializers = [
        numpy_helper.from_array(np.asarray([TINY_WEIGHTS], f32).T, "linear_w"),
        numpy_helper.from_array(np.asarray([_tiny_intercept()], f32), "linear_b"),
        numpy_helper.from_array(np.asarray([-1], np.int64), "flat_shape"),
    ]
    nodes = [helper.make_node("Gemm", ["x", "linear_w", "linear_b"], ["linear_logit"])]
    logit = "linear_logit"
    if name in HIDDEN:
        layers = _hidden_layers(name)
        # Shift the last bias so the nudge is exactly zero at the lesson's row.
        out_w, out_b = layers[-1]
        layers[-1] = (out_w, (out_b - f32(_residual_at(layers, EXAMPLE_ROW))).astype(f32))
        h = "x"
        for i, (weights, bias) in enumerate(layers):
            initializers += [numpy_helper.from_array(weights, f"w{i}"), numpy_helper.from_array(bias, f"b{i}")]
            nodes.append(helper.make_node("Gemm", [h, f"w{i}", f"b{i}"], [f"z{i}"]))
            h = f"z{i}"
            if i < len(layers) - 1:
                nodes.append(helper.make_node("Relu", [h], [f"h{i}"]))
                h = f"h{i}"
        nodes.append(helper.make_node("Add", ["linear_logit", h], ["logit"]))
        logit = "logit"
    nodes += [
        helper.make_node("Sigmoid", [logit], ["p"]),
        helper.make_node("Reshape", ["p", "flat_shape"], [OUTPUT_NAME]),
    ]
    graph = helper.make_graph(
        nodes,
        f"servelab_{name}",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", N_FEATURES])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N"])],
        initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="servelab",
        doc_string=f"servelab {name}: probability that a bike-courier delivery arrives late",
    )
    onnx.checker.check_model(model)
    return model.SerializeToString(deterministic=True)


def cache_dir() -> pathlib.Path:
    """Where built models live: $SERVELAB_CACHE, else ~/.cache/servelab/models."""
    configured = os.environ.get("SERVELAB_CACHE")
    return pathlib.Path(configured) if configured else pathlib.Path.home() / ".cache" / "servelab" / "models"


def _builder_key() -> str:
    """A hash of this builder, so a changed builder never reuses a stale file.

    Not of the onnx version: opset, IR version and serialisation are pinned above, and serving a
    built file must not need onnx (the model server image has the files, not onnx).
    """
    return hashlib.sha256(pathlib.Path(__file__).read_bytes()).hexdigest()[:12]


def path(name: str) -> pathlib.Path:
    """The built ONNX file of model `name`, building it on first use (a second at most)."""
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    target = cache_dir() / f"{name}-{_builder_key()}.onnx"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename: processes building the same model at once never see half a file.
        partial = target.with_suffix(f".{os.getpid()}.partial")
        partial.write_bytes(build(name))
        os.replace(partial, target)
    return target


def session_options(threads: int = 1) -> ort.SessionOptions:
    """onnxruntime options: `threads` intra-op threads, no spinning, sequential graph.

    Spinning threads would burn CPU while idle, which would inflate the CPU usage the
    autoscaler reads and steal cores from neighbouring replicas.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


class Model:
    """One model loaded in this process: "edge" serving, prediction without any network hop."""

    def __init__(self, name: str = "tiny", threads: int = 1):
        import onnxruntime as ort

        self.name = name
        self.threads = threads
        self.session = ort.InferenceSession(
            str(path(name)), session_options(threads), providers=["CPUExecutionProvider"]
        )
        # onnxruntime's Python wrapper checks the input names again on every call, which costs
        # as much as tiny's whole inference; `run` calls the binding underneath it when present.
        self._binding = getattr(self.session, "_sess", None)
        self._outputs = [OUTPUT_NAME]

    def run(self, x: np.ndarray) -> np.ndarray:
        """Probabilities for a float32 [N, 3] array, unchecked: the server's hot path."""
        if self._binding is not None:
            return self._binding.run(self._outputs, {INPUT_NAME: x}, None)[0]
        return self.session.run(self._outputs, {INPUT_NAME: x})[0]

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Probabilities, shape [N], for `x` of shape [N, 3] (float32; other numbers are converted)."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != N_FEATURES:
            raise ValueError(f"x must have shape [N, {N_FEATURES}]; got {list(x.shape)}")
        return self.run(x)

    def seconds_per_call(self, batch: int = 1, budget_s: float = 0.1, repeats: int = 5) -> float:
        """CPU seconds one call on `batch` rows costs here (best of `repeats` runs of ~budget_s each).

        CPU time, not wall time: what a CPU limit or a cloud bill counts, and less disturbed by
        other programs on the machine.
        """
        x = np.tile(np.asarray([EXAMPLE_ROW], np.float32), (batch, 1))
        start = time.process_time()
        self.run(x)  # the first call also warms up
        calls = max(3, int(budget_s / max(time.process_time() - start, 1e-6)))
        best = float("inf")
        for _ in range(repeats):
            start = time.process_time()
            for _ in range(calls):
                self.run(x)
            best = min(best, (time.process_time() - start) / calls)
        return best

    def __repr__(self) -> str:
        return f"Model({self.name!r}, threads={self.threads})"


def describe(path: str | pathlib.Path) -> pd.DataFrame:
    """One ONNX file at a glance: size, format versions, input/output tensors and operators."""
    import onnx
    import pandas as pd

    proto = onnx.load(str(path))
    graph = proto.graph

    def tensor(value: onnx.ValueInfoProto) -> str:
        dims = [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type)
        return f"{value.name}: {dtype} [{', '.join(map(str, dims))}]"

    weights = sum(int(np.prod(t.dims)) for t in graph.initializer)
    rows = [
        ("file", f"{pathlib.Path(path).name} ({pathlib.Path(path).stat().st_size:,} bytes)"),
        ("ONNX IR / opset", f"{proto.ir_version} / {proto.opset_import[0].version}"),
        ("input", ", ".join(tensor(v) for v in graph.input)),
        ("output", ", ".join(tensor(v) for v in graph.output)),
        ("operators", " → ".join(node.op_type for node in graph.node)),
        ("weights", f"{weights:,} numbers"),
    ]
    return pd.DataFrame(rows, columns=["what", "value"]).set_index("what")


def time_calls(call: Callable[[], Any], n: int) -> np.ndarray:
    """Seconds each of `n` back-to-back calls of `call` took (perf_counter; one warm-up call first)."""
    call()
    times = np.empty(n)
    for i in range(n):
        start = time.perf_counter()
        call()
        times[i] = time.perf_counter() - start
    return times
