"""The model family: deterministic bytes, the lesson's 0.75, the shapes, and the cost ladder."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from servelab.core import models


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SERVELAB_CACHE", str(tmp_path / "models"))


@pytest.mark.parametrize("name", models.MODEL_NAMES)
def test_rebuild_is_byte_identical_and_pinned(name):
    built = models.build(name)
    assert models.build(name) == built
    model = onnx.load_from_string(built)
    assert model.ir_version == models.IR_VERSION
    assert [(o.domain, o.version) for o in model.opset_import] == [("", models.OPSET)]


def test_path_builds_once_into_the_cache_and_matches_build(tmp_path):
    first = models.path("tiny")
    assert first.parent == tmp_path / "models"
    assert first.read_bytes() == models.build("tiny")
    mtime = first.stat().st_mtime_ns
    assert models.path("tiny") == first and first.stat().st_mtime_ns == mtime  # reused, not rebuilt
    assert not list(first.parent.glob("*.partial"))


@pytest.mark.parametrize("name", models.MODEL_NAMES)
def test_lesson_row_scores_075_and_output_is_one_probability_per_row(name):
    model = models.Model(name)
    rows = np.array([models.EXAMPLE_ROW, [0.0, 0.0, 0.0], [10.0, 3.0, 0.0]], dtype=np.float32)
    p = model.predict(rows)
    assert p.shape == (3,) and p.dtype == np.float32
    assert p[0] == pytest.approx(0.75, abs=1e-6)
    assert np.all((p > 0) & (p < 1))


def test_tiny_is_the_napkin_logistic_regression():
    x = np.array([[3.0, 1.0, 0.0], [0.5, 4.0, 12.0]], dtype=np.float32)
    logit = x.astype(np.float64) @ np.array(models.TINY_WEIGHTS) + np.log(3) - 2.0
    assert models.Model("tiny").predict(x) == pytest.approx(1 / (1 + np.exp(-logit)), rel=1e-5)


def test_bigger_models_disagree_with_tiny_away_from_the_lesson_row():
    x = np.array([[10.0, 3.0, 0.0]], dtype=np.float32)
    tiny, medium, large = (models.Model(n).predict(x)[0] for n in models.MODEL_NAMES)
    assert abs(medium - tiny) > 1e-3 and abs(large - tiny) > 1e-3


def test_predict_rejects_the_wrong_shape():
    with pytest.raises(ValueError, match=r"shape \[N, 3\]"):
        models.Model("tiny").predict(np.zeros((2, 4), np.float32))


def test_unknown_model_names_the_choices():
    with pytest.raises(ValueError, match="tiny, medium, large"):
        models.build("huge")


def test_cost_ladder_tiny_medium_large():
    """Same run, wide bounds: measured about 1 : 10-20 : 200 at batch 1 on one thread."""
    tiny, medium, large = (models.Model(n).seconds_per_call(budget_s=0.05) for n in models.MODEL_NAMES)
    assert medium > 3 * tiny, (tiny, medium)
    assert large > 3 * medium and large > 20 * tiny, (tiny, medium, large)
