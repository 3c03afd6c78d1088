"""Grading: reading answers, numeric tolerance at its edges, the score table."""

from __future__ import annotations

import pytest

from servelab.quiz.bank import Bank, Question
from servelab.quiz.grading import AnswerError, grade, is_correct, normalize, within

SINGLE = Question(id="s", difficulty="easy", kind="single", prompt="?", options=("a", "b", "c"), answer="B")
MULTI = Question(id="m", difficulty="hard", kind="multiple", prompt="?", options=("a", "b", "c", "d"), answer=("A", "C"))
ABS = Question(id="n", difficulty="medium", kind="numeric", prompt="?", answer=100.0, tolerance={"abs": 2.0}, unit="ms")
REL = Question(id="r", difficulty="medium", kind="numeric", prompt="?", answer=200.0, tolerance={"rel": 0.05}, unit="ms")
BANK = Bank(name="t", title="t", questions=(SINGLE, MULTI, ABS, REL), raw={})


@pytest.mark.parametrize(
    ("q", "given", "correct"),
    [
        (ABS, 101.999, True), (ABS, 102.0, True), (ABS, 102.001, False), (ABS, 97.999, False),
        (REL, 209.99, True), (REL, 210.0, True), (REL, 210.01, False), (REL, 189.99, False),
    ],
)
def test_numeric_tolerance_boundary(q, given, correct):
    assert is_correct(q, normalize(q, given), q.answer) is correct


def test_absolute_or_relative_whichever_is_wider():
    assert within(10.4, 10.0, {"abs": 0.5, "rel": 0.01})
    assert within(1040.0, 1000.0, {"abs": 0.5, "rel": 0.05})
    assert not within(10.6, 10.0, {"abs": 0.5, "rel": 0.01})


def test_answers_are_read_leniently_but_never_guessed():
    assert normalize(SINGLE, " b ") == "B"
    assert normalize(MULTI, "c, a") == ("A", "C")
    assert normalize(MULTI, ["C", "A"]) == ("A", "C")
    assert normalize(ABS, "101.5") == 101.5
    assert normalize(ABS, "") is None
    for q, raw, says in [(SINGLE, "D", "one letter of A, B, C"), (MULTI, ["A", "Z"], "Z not an option"),
                         (ABS, "12 ms", "no unit"), (ABS, float("nan"), "finite"), (ABS, True, "a number")]:
        with pytest.raises(AnswerError, match=says):
            normalize(q, raw)


def test_multiple_choice_needs_exactly_the_right_set():
    assert is_correct(MULTI, ("A", "C"), MULTI.answer)
    assert not is_correct(MULTI, ("A",), MULTI.answer)
    assert not is_correct(MULTI, ("A", "B", "C"), MULTI.answer)


def test_grade_marks_blanks_wrong_and_prints_a_table():
    result = grade(BANK, {"s": "B", "m": ["A", "C"], "n": 150})
    assert [m.correct for m in result.marks] == [True, True, False, False]
    assert (result.score, result.total) == (2, 4)
    table = result.table()
    assert "score: 2/4" in table and "blank" in table and "wrong" in table


def test_unknown_question_id_is_refused_by_name():
    with pytest.raises(AnswerError, match="has no question 'zz'"):
        grade(BANK, {"zz": "A"})
