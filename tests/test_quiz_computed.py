"""Questions computed from the learner's own saved load-test result."""

from __future__ import annotations

import numpy as np
import pytest
from quiz_fixtures import BANKS, P95_AT_100_MS, SLO_MS, results_root, save_run  # noqa: F401

from servelab.quiz import bank as banks
from servelab.quiz import computed
from servelab.quiz.grading import computed_keys, grade


def test_p95_and_rate_of_one_run(tmp_path):
    run = save_run(tmp_path / "run", rate=100, low=0.010, high=0.030)
    stats = computed.run_stats(run)
    assert stats.offered_rate == pytest.approx(100.0)
    assert stats.p95_ms == pytest.approx(np.percentile(np.linspace(10, 30, 200), 95))
    assert stats.failed == 0


def test_highest_rate_within_slo_skips_rates_with_failures(results_root):  # noqa: F811
    sweep = results_root / "03-load" / "sweep"
    # 200 req/s has p95 under the SLO but one failed request, so 100 req/s is the answer.
    assert computed.max_rate_under_slo(sweep, SLO_MS) == pytest.approx(100.0)
    assert computed.p95_ms_at_highest_rate_under_slo(sweep, SLO_MS) == pytest.approx(P95_AT_100_MS)


@pytest.mark.parametrize(
    ("given", "correct"),
    # tolerance rel 0.05 (1.45 ms at 29 ms) or abs 0.5 ms, whichever is wider
    [(P95_AT_100_MS, True), (30.44, True), (30.46, False), (27.56, True), (27.54, False)],
)
def test_computed_question_is_graded_at_the_tolerance_boundary(results_root, given, correct):  # noqa: F811
    quiz = banks.load("03-load", BANKS)
    values, problems = computed_keys(quiz, results_root)
    assert problems == {}
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


def test_rate_from_send_times_when_meta_has_no_duration(tmp_path):
    run = save_run(tmp_path / "run", rate=40, low=0.01, high=0.02)
    (run / "meta.json").write_text("{}")
    assert computed.run_stats(run).offered_rate == pytest.approx(40.0)
