"""`servelab score`: batch scoring gives the same answers whatever the batch size, from CSV or synthetic rows."""

from __future__ import annotations

import numpy as np
import pytest

from servelab import batch, cli
from servelab.core import models


def test_batch_size_does_not_change_the_answers():
    rows = batch.synthetic_rows(1000, seed=3)
    small, large = batch.score(rows, batch_size=7), batch.score(rows, batch_size=4096)
    assert small.rows == large.rows == 1000
    assert small.mean_probability == pytest.approx(large.mean_probability, rel=1e-6)
    assert small.rows_per_s > 0


def test_synthetic_rows_are_seeded_and_shaped_for_the_model():
    rows = batch.synthetic_rows(50, seed=1)
    assert rows.shape == (50, models.N_FEATURES) and rows.dtype == np.float32
    assert np.array_equal(rows, batch.synthetic_rows(50, seed=1))


def test_csv_with_a_header_scores_the_lessons_row(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("km,stops,rain\n1.0,2.0,5.0\n")
    report = batch.score(batch.read_csv_rows(path))
    assert report.rows == 1 and report.mean_probability == pytest.approx(models.EXAMPLE_PROBABILITY, abs=1e-4)


def test_the_command_prints_rows_per_second(capsys, tmp_path):
    assert cli.main(["score", "--rows", "2000", "--batch-size", "500"]) == 0
    assert "scored 2000 rows with tiny in batches of 500" in capsys.readouterr().out
    assert cli.main(["score", "--csv", str(tmp_path / "missing.csv")]) == 2
    assert "no such CSV file" in capsys.readouterr().err


def test_a_batch_size_below_one_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        batch.score(batch.synthetic_rows(3), batch_size=0)
