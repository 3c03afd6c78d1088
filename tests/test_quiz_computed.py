"""Questions computed from the learner's own saved load-test result."""

from __future__ import annotations

import numpy as np
import pytest
from quiz_fixtures import BANKS, P95_AT_100_MS, SLO_MS, results_root, save_run  # noqa: F401

from servelab.load.result import Result
from servelab.quiz import bank as banks
from servelab.quiz import computed
from servelab.quiz.grading import computed_keys, grade


def test_p95_and_rate_of_one_run_are_the_learners_own_table(tmp_path):
    run = save_run(tmp_path / "run", rate=100, low=0.010, high=0.030)
    stats = computed.run_stats(run)
    summary = Result.load(run).summary()  # what the learner's table showed
    assert (stats.offered_rate, stats.p95_ms, stats.failed) == (summary["offered_rate"], summary["p95"], 0)
    assert stats.offered_rate == pytest.approx(100.0)
    assert stats.p95_ms == pytest.approx(np.percentile(np.linspace(10, 30, 200), 95), rel=1e-3)  # 3 digits


def test_highest_rate_within_slo_skips_rates_with_failures(results_root):  # noqa: F811
    sweep = results_root / "03-load" / "sweep"
    # 200 req/s has p95 under the SLO but one failed request, so 100 req/s is the answer.
    assert computed.max_rate_under_slo(sweep, SLO_MS) == pytest.approx(100.0)
    assert computed.p95_ms_at_highest_rate_under_slo(sweep, SLO_MS) == pytest.approx(P95_AT_100_MS, rel=1e-3)


@pytest.mark.parametrize(
    ("offset", "correct"),
    # tolerance rel 0.05 (about 1.45 ms at 29 ms) or abs 0.5 ms, whichever is wider
    [(0.0, True), (0.0499, True), (0.0501, False), (-0.0499, True), (-0.0501, False)],
)
def test_computed_question_is_graded_at_the_tolerance_boundary(results_root, offset, correct):  # noqa: F811
    quiz = banks.load("03-load", BANKS)
    values, problems = computed_keys(quiz, results_root)
    assert problems == {}
    assert values["p95-at-slo-rate"] == pytest.approx(P95_AT_100_MS, rel=1e-3)
    given = values["p95-at-slo-rate"] * (1 + offset)
    result = grade(quiz, {"p95-at-slo-rate": given}, values)
    [mark] = [m for m in result.marks if m.question == "p95-at-slo-rate"]
    assert mark.correct is correct


def test_missing_run_marks_the_question_wrong_and_says_why(tmp_path):
    quiz = banks.load("03-load", BANKS)
    values, problems = computed_keys(quiz, tmp_path)
    result = grade(quiz, {"p95-at-slo-rate": 29.0}, values, problems)
    [mark] = [m for m in result.marks if m.question == "p95-at-slo-rate"]
    assert not mark.correct and "run and save the sweep first" in mark.note


def test_no_rate_within_slo_is_explained(tmp_path):
    save_run(tmp_path / "sweep" / "r1", rate=100, low=0.1, high=0.2)
    with pytest.raises(computed.ResultError, match="no rate in this sweep kept p95 within 50 ms"):
        computed.max_rate_under_slo(tmp_path / "sweep", 50)


def test_a_run_that_is_not_saved_says_how_to_save_it(tmp_path):
    with pytest.raises(computed.ResultError, match="save your run"):
        computed.run_stats(tmp_path / "nothing")
