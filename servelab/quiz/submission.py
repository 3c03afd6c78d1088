"""`quiz.show` and `quiz.submit`: the two calls a lab makes, in self-study or class mode."""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Any

from servelab.quiz import bank as banks
from servelab.quiz import widgets
from servelab.quiz.gradebook import Gradebook
from servelab.quiz.grader_client import class_mode
from servelab.quiz.grading import Grade, Mark, computed_keys, grade, read_answers


def default_student() -> str:
    """$SERVELAB_STUDENT, else the login name: who a self-study attempt belongs to."""
    return os.environ.get("SERVELAB_STUDENT") or getpass.getuser()


def show(name: str, results: str | Path | None = None) -> None:
    """Show quiz `name` ("03-load" or "03"): widgets with a Check button in JupyterLab, text elsewhere.

    `results` is where your saved runs are (default $SERVELAB_RESULTS or ./results); questions
    computed from your own run read them there.
    """
    client = class_mode()
    if client:
        widgets.show(client.bank(name), results, graded_here=False)
    else:
        widgets.show(banks.load(name), results)


def submit(name: str, answers: dict[str, Any] | None = None, student: str | None = None,
           results: str | Path | None = None) -> Grade:
    """Grade every question of quiz `name`, record the attempt, print the score table.

    `answers` maps question id to answer (a letter, a list of letters, or a number); None takes
    what you entered in the widgets of `show`. Self-study records in the local gradebook
    ($SERVELAB_GRADEBOOK or ~/.servelab/gradebook.sqlite); class mode ($SERVELAB_GRADER_URL and
    $SERVELAB_TOKEN set) sends the attempt to the grader service, which marks and stores it.
    """
    client = class_mode()
    quiz = client.bank(name) if client else banks.load(name)
    if answers is None:
        answers = widgets.answers_from_widgets(quiz.name)
    given = read_answers(quiz, answers)
    values, problems = computed_keys(quiz, results)
    if client:
        wire = {qid: list(a) if isinstance(a, tuple) else a for qid, a in given.items() if a is not None}
        result = _from_reply(client.submit(quiz.name, wire, values, student))
    else:
        result = grade(quiz, answers, values, problems)
        result.student = student or default_student()
        result.attempt = Gradebook().record(result, result.student).number
    print(result.table())
    return result


def _from_reply(reply: dict) -> Grade:
    marks = [
        Mark(m["question"], m["difficulty"], tuple(m["answer"]) if isinstance(m["answer"], list) else m["answer"],
             m["correct"], m.get("note", ""))
        for m in reply["marks"]
    ]
    return Grade(quiz=reply["quiz"], marks=marks, student=reply["student"], late=reply["late"], attempt=reply["attempt"])
