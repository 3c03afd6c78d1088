"""Showing a quiz: widgets with Check feedback, text where widgets cannot be drawn, and submit."""

from __future__ import annotations

import sqlite3

import nbformat
import pytest
from nbclient import NotebookClient
from quiz_fixtures import BANKS, P95_AT_100_MS

from servelab import quiz
from servelab.quiz import widgets
from servelab.quiz.gradebook import Gradebook
from servelab.quiz.grading import AnswerError


@pytest.fixture(autouse=True)
def local_mode(monkeypatch, tmp_path):
    monkeypatch.setenv("SERVELAB_QUIZZES", str(BANKS))
    monkeypatch.setenv("SERVELAB_GRADEBOOK", str(tmp_path / "gradebook.sqlite"))
    monkeypatch.setenv("SERVELAB_RESULTS", str(tmp_path / "no-results"))
    for name in ("SERVELAB_GRADER_URL", "SERVELAB_TOKEN", "SERVELAB_QUIZ_MODE"):
        monkeypatch.delenv(name, raising=False)
    widgets._views.clear()


def test_outside_a_jupyter_front_end_the_quiz_prints_as_text(capsys):
    assert not widgets.widgets_available()
    quiz.show("pattern")
    text = capsys.readouterr().out
    assert text.startswith("Quiz pattern:") and "\n10. [hard]\n" in text
    assert 'C. Edge serving' in text and '(answer as "p1": one letter)' in text
    assert '(answer as "p10": a number in replicas, accepted exactly)' in text
    assert '(answer as "p9": a number in dollars, accepted to within 2 %)' in text
    every_key = ", ".join(f'"p{n}": ...' for n in range(1, 11))
    assert f'Answer with: quiz.submit("pattern", answers={{{every_key}}})' in text
    assert "Answer C" not in text  # worked steps are feedback, not part of the question


def test_an_id_is_shown_only_as_the_key_to_answer_under(capsys):
    """A heading never carries the id; the id appears where `answers` needs it, and nowhere else."""
    quiz.show("06")
    lines = capsys.readouterr().out.splitlines()
    headings = [line for line in lines if line[:1].isdigit()]
    assert headings[0] == "1. [medium]" and len(headings) == 10
    for qid in ("p3", "p4", "q3", "q10"):
        assert sum(f'"{qid}"' in line for line in lines) == 2, qid  # its answer line and the submit template


def test_computed_question_says_it_is_checked_against_the_last_saved_run(capsys):
    quiz.show("03")
    text = capsys.readouterr().out
    assert ('(answer as "q6": a number in ms (checked against your last saved run), accepted to within 5 % '
            'or ±0.5 ms, whichever is wider)') in text


def _view(monkeypatch, name, results=None):
    monkeypatch.setenv("SERVELAB_QUIZ_MODE", "widgets")
    quiz.show(name, results)
    return widgets._views[name]


def _click(view, question_id):
    """Press a question's Check button; return the feedback text it shows."""
    index = view.bank.ids.index(question_id) + 1
    block = view.widget.children[index]
    button, feedback = block.children[2], block.children[3]
    button.click()
    return feedback.value


def test_widgets_check_gives_verdict_steps_hint_and_mistakes(monkeypatch):
    view = _view(monkeypatch, "pattern")
    radio = view._inputs["p1"]
    radio.value = radio.options[1]
    wrong = _click(view, "p1")
    assert "Not quite." in wrong and "Worked solution" in wrong and "Hint:" in wrong and "Common mistakes" in wrong
    radio.value = radio.options[2]
    assert "Correct." in _click(view, "p1")
    for box in view._inputs["p7"].children:
        box.value = box.description[0] in "BDE"
    assert "Correct." in _click(view, "p7")
    view._inputs["p10"].value = "three"
    assert "answer with a number" in _click(view, "p10")
    prompt = view.widget.children[10].children[0].value
    assert "<b>10.</b>" in prompt and "p10" not in prompt and "accepted exactly" in prompt


def test_computed_question_checks_against_the_learners_run(monkeypatch, results_root):
    view = _view(monkeypatch, "03-load", results_root)
    view._inputs["q6"].value = str(P95_AT_100_MS)
    assert "Correct." in _click(view, "q6")


def test_submit_without_answers_takes_them_from_the_widgets(monkeypatch):
    view = _view(monkeypatch, "pattern")
    view._inputs["p10"].value = "3"
    result = quiz.submit("pattern", student="wid")
    assert result.score == 1 and result.attempt == 1


def test_submit_without_answers_or_widgets_says_what_to_do():
    with pytest.raises(AnswerError, match=r"answer it in the widgets of quiz.show\('pattern'\) first"):
        quiz.submit("pattern")


def test_submit_records_the_attempt_and_prints_a_score_table(capsys, tmp_path):
    result = quiz.submit("00", {"p1": "c", "p3": "A"}, student="ann")
    out = capsys.readouterr().out
    assert "quiz 00-orientation - ann - attempt 1" in out and "score: 2/8" in out
    assert out.count("no saved latencies here") == 4  # the computed questions, with no saved run to read
    [stored] = Gradebook(tmp_path / "gradebook.sqlite").attempts(student="ann")
    assert (stored["quiz"], stored["score"], stored["total"]) == ("00-orientation", result.score, 8)


def test_headless_notebook_shows_text_and_submits(tmp_path):
    """What nbval sees: a kernel without a Jupyter front end; show prints text, submit records."""
    answers = {"p1": "C", "p2": "B", "p10": 3}
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell('from servelab import quiz\nquiz.show("pattern")'),
        nbformat.v4.new_code_cell(f'result = quiz.submit("pattern", answers={answers!r}, student="nb")'),
    ])
    # A third cell pretends the kernel was started by Jupyter Server: then the same call draws widgets.
    notebook.cells.append(nbformat.v4.new_code_cell(
        'import os\nos.environ["JPY_SESSION_NAME"] = "lab.ipynb"\nquiz.show("pattern")'))
    NotebookClient(notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    shown, submitted = ("".join(o.get("text", "") for o in c.outputs) for c in notebook.cells[:2])
    assert all(o.output_type == "stream" for c in notebook.cells[:2] for o in c.outputs)  # text, not widgets
    [drawn] = notebook.cells[2].outputs
    assert "application/vnd.jupyter.widget-view+json" in drawn["data"]
    assert shown.startswith("Quiz pattern:") and "1. [easy]\n" in shown
    assert "quiz pattern - nb - attempt 1" in submitted and "score: 3/10" in submitted
    rows = sqlite3.connect(tmp_path / "gradebook.sqlite").execute("SELECT student, quiz, score FROM attempts").fetchall()
    assert rows == [("nb", "pattern", 3)]
