"""Grading: turn what a learner typed into a canonical answer, and mark it against the key.

The same functions run in a notebook, in `servelab quiz grade`, and inside the grader service,
so a question is marked the same way wherever it is submitted. Nothing here depends on a clock
or on another machine's timing: computed answers arrive as numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from servelab.quiz import computed
from servelab.quiz.bank import Bank, Question

# Float slack so an answer exactly on the tolerance edge is not lost to rounding.
_EDGE = 1e-9


class AnswerError(ValueError):
    """An answer that cannot be read at all (not merely wrong); says which question and why."""


def normalize(q: Question, raw: Any) -> Any:
    """Canonical form of an answer: a letter, a sorted tuple of letters, a float, or None (blank)."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if q.kind == "single":
        letter = raw.strip().upper() if isinstance(raw, str) else None
        if letter is None or letter not in q.letters:
            raise AnswerError(f"question {q.id!r}: answer with one letter of {', '.join(q.letters)}; got {raw!r}")
        return letter
    if q.kind == "multiple":
        items = raw.replace(",", " ").split() if isinstance(raw, str) else raw
        if not isinstance(items, (list, tuple)) or not all(isinstance(i, str) for i in items):
            raise AnswerError(f"question {q.id!r}: answer with a list of letters like ['A', 'C']; got {raw!r}")
        letters = {i.strip().upper() for i in items}
        wrong = sorted(letters - set(q.letters))
        if wrong:
            raise AnswerError(f"question {q.id!r}: {', '.join(wrong)} not an option (options are {', '.join(q.letters)})")
        return tuple(sorted(letters))
    return _number(q, raw)


def _number(q: Question, raw: Any) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        raise AnswerError(f"question {q.id!r}: answer with a number in {q.unit}; got {raw!r}")
    try:
        value = float(raw)
    except ValueError:
        raise AnswerError(f"question {q.id!r}: answer with a number in {q.unit} (no unit); got {raw!r}") from None
    if not math.isfinite(value):
        raise AnswerError(f"question {q.id!r}: answer with a finite number; got {raw!r}")
    return value


def within(given: float, expected: float, tolerance: dict) -> bool:
    """True when `given` is within the absolute OR the relative tolerance of `expected`."""
    allowed = max(tolerance.get("abs", 0.0), tolerance.get("rel", 0.0) * abs(expected))
    return abs(given - expected) <= allowed + _EDGE * max(1.0, abs(expected))


def key(q: Question, computed_value: float | None = None) -> Any:
    """The expected answer: the bank's, or for a computed question the value from the learner's run."""
    return computed_value if q.kind == "computed" else q.answer


def is_correct(q: Question, answer: Any, expected: Any) -> bool:
    """Mark one normalized answer against its key."""
    if answer is None or expected is None:
        return False
    if q.kind in ("numeric", "computed"):
        return within(answer, float(expected), q.tolerance)
    return answer == expected


@dataclass
class Mark:
    """The outcome of one question."""

    question: str
    difficulty: str
    answer: Any
    correct: bool
    note: str = ""  # why a question could not be marked normally (e.g. no saved run)


@dataclass(repr=False)
class Grade:
    """A whole quiz marked: one Mark per question in bank order."""

    quiz: str
    marks: list[Mark] = field(default_factory=list)
    student: str = ""
    late: bool = False
    attempt: int | None = None

    @property
    def score(self) -> int:
        return sum(m.correct for m in self.marks)

    @property
    def total(self) -> int:
        return len(self.marks)

    def table(self) -> str:
        """The score table `submit` prints."""
        head = f"quiz {self.quiz}"
        if self.student:
            head += f" - {self.student}"
        if self.attempt:
            head += f" - attempt {self.attempt}"
        if self.late:
            head += " - LATE (recorded, flagged for the instructor)"
        width = max([len("question")] + [len(m.question) for m in self.marks])
        lines = [head, f"{'question':<{width}}  {'level':<6}  {'your answer':<12}  result"]
        for m in self.marks:
            result = "correct" if m.correct else "wrong" if m.answer is not None else "blank"
            if m.note:
                result += f" ({m.note})"
            lines.append(f"{m.question:<{width}}  {m.difficulty:<6}  {format_answer(m.answer):<12}  {result}")
        lines.append(f"score: {self.score}/{self.total}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        # Short, because `submit` has already printed the table above a notebook cell's result.
        return f"<Grade {self.quiz}: {self.score}/{self.total}>"


def format_answer(answer: Any) -> str:
    if answer is None:
        return "-"
    if isinstance(answer, tuple):
        return ",".join(answer)
    if isinstance(answer, float):
        return f"{answer:g}"
    return str(answer)


def read_answers(bank: Bank, answers: dict) -> dict[str, Any]:
    """Normalize a {question id: raw answer} mapping; unknown ids and unreadable answers raise."""
    if not isinstance(answers, dict):
        raise AnswerError(f"answers must be a mapping of question id to answer; got {type(answers).__name__}")
    unknown = sorted(set(map(str, answers)) - set(bank.ids))
    if unknown:
        raise AnswerError(f"quiz {bank.name!r} has no question {unknown[0]!r} (its questions: {', '.join(bank.ids)})")
    return {q.id: normalize(q, answers.get(q.id)) for q in bank.questions}


def computed_keys(bank: Bank, results: str | Path | None = None) -> tuple[dict[str, float], dict[str, str]]:
    """Keys of the computed questions from the learner's saved runs, and why any could not be made."""
    values, problems = {}, {}
    for q in bank.questions:
        if q.kind == "computed":
            try:
                values[q.id] = computed.expected(q.compute, results)
            except computed.ResultError as exc:
                problems[q.id] = str(exc)
    return values, problems


def grade(bank: Bank, answers: dict, computed_values: dict[str, float] | None = None,
          problems: dict[str, str] | None = None) -> Grade:
    """Mark every question of `bank`; blanks are wrong, a computed question without a run is wrong with a note."""
    given = read_answers(bank, answers)
    computed_values, problems = computed_values or {}, problems or {}
    marks = []
    for q in bank.questions:
        expected = key(q, computed_values.get(q.id))
        note = problems.get(q.id, "no saved run to check against" if q.kind == "computed" and expected is None else "")
        marks.append(Mark(q.id, q.difficulty, given[q.id], is_correct(q, given[q.id], expected), note))
    return Grade(quiz=bank.name, marks=marks)
