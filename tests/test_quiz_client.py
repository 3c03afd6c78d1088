"""Class mode end to end: a student's quiz.show / quiz.submit / `quiz take` against a real grader."""

from __future__ import annotations

import pytest
from quiz_fixtures import BANKS, P95_AT_100_MS, GraderProcess, servelab, write_roster

from servelab import quiz
from servelab.quiz.gradebook import Gradebook, read_roster
from servelab.quiz.grader_client import GraderError


@pytest.fixture(scope="module")
def grader(tmp_path_factory):
    """One real grader for this module: ann, bob and cat, 2 attempts each."""
    tmp = tmp_path_factory.mktemp("class")
    db, roster = tmp / "class.sqlite", write_roster(tmp / "roster.csv", ["ann", "bob", "cat"])
    book = Gradebook(db)
    book.add_roster(read_roster(roster))
    tokens = book.issue_tokens()
    process = GraderProcess("--db", str(db), "--bank-dir", str(BANKS), "--roster", str(roster), "--attempts", "2")
    yield process, tokens
    process.stop()


@pytest.fixture
def class_grader(grader, tmp_path, monkeypatch):
    """Class mode for ann. The student's side has no keys: only the copy the service hands out."""
    process, tokens = grader
    monkeypatch.setenv("SERVELAB_QUIZZES", str(tmp_path / "no-banks-here"))
    monkeypatch.setenv("SERVELAB_GRADER_URL", process.url)
    monkeypatch.setenv("SERVELAB_TOKEN", tokens["ann"])
    monkeypatch.delenv("SERVELAB_QUIZ_MODE", raising=False)
    return process, tokens


def test_show_and_submit_go_through_the_service(class_grader, results_root, capsys):
    quiz.show("03")
    assert '6. [hard]\n' in capsys.readouterr().out
    answers = {"q1": "C", "q6": P95_AT_100_MS + 1.0, "q5": 150}
    result = quiz.submit("03", answers, results=results_root)
    out = capsys.readouterr().out
    assert "quiz 03-load - ann - attempt 1" in out and "score: 2/9" in out
    assert [m.question for m in result.marks if m.correct] == ["q1", "q6"]


def test_refusals_reach_the_student_as_clear_errors(class_grader, monkeypatch):
    process, tokens = class_grader
    monkeypatch.setenv("SERVELAB_TOKEN", tokens["cat"])
    quiz.submit("pattern", {})
    quiz.submit("pattern", {})
    with pytest.raises(GraderError, match="409: attempt limit reached: 2 of 2"):
        quiz.submit("pattern", {})
    monkeypatch.setenv("SERVELAB_TOKEN", "made-up")
    with pytest.raises(GraderError, match="401: missing or invalid token"):
        quiz.submit("pattern", {})


def test_take_in_a_terminal_in_class_mode(class_grader, tmp_path):
    process, tokens = class_grader
    typed = "Z\nC\n" + "\n" * 9  # an unreadable answer is asked again, not recorded
    env = {"SERVELAB_GRADER_URL": process.url, "SERVELAB_TOKEN": tokens["bob"], "SERVELAB_QUIZZES": str(tmp_path)}
    done = servelab("quiz", "take", "pattern", env=env, input=typed)
    assert done.returncode == 0, done.stderr
    assert "answer with one letter of A, B, C, D" in done.stdout
    assert "quiz pattern - bob - attempt 1" in done.stdout and "score: 1/10" in done.stdout
