"""Showing a quiz: ipywidgets in JupyterLab, plain text everywhere else.

Widgets need a front end that draws them. A kernel started by Jupyter Server (JupyterLab,
Notebook 7) has $JPY_SESSION_NAME set; a kernel driven headless by nbclient/nbval, a terminal
IPython or plain Python do not, and there the quiz prints as text with the exact `submit` call
to type. $SERVELAB_QUIZ_MODE=text|widgets overrides the guess.
"""

from __future__ import annotations

import html
import os
import sys
from pathlib import Path
from typing import Any

from servelab.quiz.bank import Bank, Question
from servelab.quiz.grading import AnswerError, is_correct, key, normalize

_KIND_HELP = {
    "single": "one letter",
    "multiple": "every letter that applies, e.g. ['A', 'C']",
    "numeric": "a number",
    "computed": "a number",
}

_views: dict[str, QuizView] = {}


def widgets_available() -> bool:
    """True when this process is a kernel whose front end can draw ipywidgets."""
    forced = os.environ.get("SERVELAB_QUIZ_MODE")
    if forced in ("text", "widgets"):
        return forced == "widgets"
    shell = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    if shell is None or type(shell).__name__ != "ZMQInteractiveShell" or not os.environ.get("JPY_SESSION_NAME"):
        return False
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def render_text(bank: Bank) -> str:
    """The whole quiz as text, ending with the `submit` call that answers it, every key filled in."""
    lines = [f"Quiz {bank.name}: {bank.title} ({len(bank.questions)} questions)", ""]
    for n, q in enumerate(bank.questions, start=1):
        lines += [render_question(n, q), ""]
    keys = ", ".join(f'"{q.id}": ...' for q in bank.questions)
    lines.append(f'Answer with: quiz.submit("{bank.name}", answers={{{keys}}})')
    return "\n".join(lines)


def render_question(n: int, q: Question) -> str:
    """Question `n` as text: prompt, lettered options, and the key and form its answer takes.

    The id appears only as the key to type in `answers`, never as a title: ids are neutral
    (q1, p3), so they give nothing away.
    """
    lines = [f"{n}. [{q.difficulty}]"]
    lines += [f"   {line}" for line in q.prompt.splitlines()]
    lines += [f"   {letter}. {text}" for letter, text in zip(q.letters, q.options)]
    lines.append(f'   (answer as "{q.id}": {answer_form(q)})')
    return "\n".join(lines)


def answer_form(q: Question) -> str:
    """What an answer to `q` looks like, with the unit and the precision accepted for a number."""
    form = _KIND_HELP[q.kind]
    if q.unit:
        form += f" in {q.unit}"
    if q.kind == "computed":
        form += " (checked against your last saved run)"
    if q.precision():
        form += f", accepted {q.precision()}"
    return form


def feedback_text(q: Question, correct: bool | None) -> str:
    """What a learner sees after checking one answer: verdict, worked steps, hint, mistakes."""
    verdict = {True: "Correct.", False: "Not quite.", None: ""}[correct]
    parts = [verdict] if verdict else []
    if q.steps:
        parts.append("Worked solution:\n" + "\n".join(f"  {i}. {s}" for i, s in enumerate(q.steps, start=1)))
    if q.hint:
        parts.append(f"Hint: {q.hint}")
    if q.mistakes:
        parts.append("Common mistakes:\n" + "\n".join(f"  - {m}" for m in q.mistakes))
    return "\n".join(parts)


class QuizView:
    """The widgets of one quiz; `answers()` reads what the learner has entered so far."""

    def __init__(self, bank: Bank, results: str | Path | None = None, graded_here: bool = True):
        import ipywidgets as w

        self.bank, self.results, self.graded_here = bank, results, graded_here
        self._inputs: dict[str, Any] = {}
        blocks = [w.HTML(f"<h3>Quiz {html.escape(bank.name)}: {html.escape(bank.title)}</h3>")]
        for n, q in enumerate(bank.questions, start=1):
            blocks.append(self._question_block(w, n, q))
        blocks.append(w.HTML(f"<p>When you are done: <code>quiz.submit({bank.name!r})</code></p>"))
        self.widget = w.VBox(blocks)

    def _question_block(self, w: Any, n: int, q: Question) -> Any:
        prompt = w.HTML(f"<p><b>{n}.</b> <i>[{q.difficulty}]</i> {html.escape(q.prompt)}</p>"
                        f"<p><small>Answer with {html.escape(answer_form(q))}.</small></p>")
        labels = [f"{letter}. {text}" for letter, text in zip(q.letters, q.options)]
        layout = w.Layout(width="auto")
        if q.kind == "single":
            entry = w.RadioButtons(options=labels, value=None, layout=layout)
        elif q.kind == "multiple":
            entry = w.VBox([w.Checkbox(description=label, value=False, indent=False, layout=layout) for label in labels])
        else:
            entry = w.Text(placeholder=f"number in {q.unit}", description=q.unit, layout=w.Layout(width="18em"))
        self._inputs[q.id] = entry
        button = w.Button(description="Check", button_style="info")
        feedback = w.HTML()
        button.on_click(lambda _: setattr(feedback, "value", self._check(q)))
        return w.VBox([prompt, entry, button, feedback])

    def raw_answer(self, q: Question) -> Any:
        entry = self._inputs[q.id]
        if q.kind == "single":
            return entry.value[0] if entry.value else None
        if q.kind == "multiple":
            return [box.description[0] for box in entry.children if box.value] or None
        return entry.value

    def answers(self) -> dict[str, Any]:
        return {q.id: self.raw_answer(q) for q in self.bank.questions}

    def _check(self, q: Question) -> str:
        from servelab.quiz.computed import ResultError, expected

        try:
            answer = normalize(q, self.raw_answer(q))
            if not self.graded_here:
                return _html_block("Saved. In class mode the grader marks it when you run quiz.submit(...).\n"
                                   + feedback_text(q, None))
            value = expected(q.compute, self.results) if q.kind == "computed" else None
        except (AnswerError, ResultError) as exc:
            return _html_block(str(exc))
        return _html_block(feedback_text(q, is_correct(q, answer, key(q, value))))


def _html_block(text: str) -> str:
    return f"<pre style='white-space: pre-wrap'>{html.escape(text)}</pre>"


def show(bank: Bank, results: str | Path | None = None, graded_here: bool = True) -> None:
    """Display `bank` as widgets where they can be drawn, else print it as text."""
    if widgets_available():
        from IPython.display import display

        view = QuizView(bank, results, graded_here)
        _views[bank.name] = view
        display(view.widget)
    else:
        print(render_text(bank))


def answers_from_widgets(name: str) -> dict[str, Any]:
    """What the learner entered in the widgets of quiz `name`; a clear error when none are shown."""
    if name not in _views:
        raise AnswerError(
            f"no answers for quiz {name!r}: answer it in the widgets of quiz.show({name!r}) first, "
            f"or pass them: quiz.submit({name!r}, answers={{question id: answer}})"
        )
    return _views[name].answers()

