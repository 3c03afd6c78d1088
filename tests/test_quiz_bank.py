"""Banks: every shipped bank validates, the pattern quiz mirrors the lesson, broken banks say where."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from quiz_fixtures import BANKS

from servelab.quiz import bank as banks
from servelab.quiz.bank import BankError

# The lesson's five practice questions: the concept each correct answer must carry.
LESSON_ANSWERS = {
    1: ("edge",),
    2: ("groups", "costs less", "longer"),
    3: ("online is fast", "costs more", "batch is slow", "costs less"),
    4: ("too big", "devices"),
    5: ("edge", "batch"),
}


def test_every_bank_validates_and_every_lab_has_one():
    found = banks.load_all(BANKS)
    labs = {notebook.stem for notebook in (BANKS.parent / "solutions").glob("*.ipynb")}
    assert set(found) == labs | {"pattern"}


def test_pattern_has_ten_questions_at_least_three_per_difficulty():
    pattern = banks.load("pattern", BANKS)
    assert len(pattern.questions) == 10
    for level in banks.DIFFICULTIES:
        assert sum(q.difficulty == level for q in pattern.questions) >= 3, level


@pytest.mark.parametrize("number", sorted(LESSON_ANSWERS))
def test_each_lesson_question_has_a_counterpart_with_the_same_answer(number):
    pattern = banks.load("pattern", BANKS)
    [q] = [q for q in pattern.questions if q.lesson_question == number]
    correct = q.options[q.letters.index(q.answer)].lower()
    for phrase in LESSON_ANSWERS[number]:
        assert phrase in correct, (q.id, phrase, correct)
    # The seed's letter is kept too, so the counterpart is easy to check by eye.
    assert q.answer == "CBADA"[number - 1]


def test_lab_00_reuses_the_pattern_concept_questions_without_copying_them():
    orientation = banks.load("00", BANKS)
    pattern = banks.load("pattern", BANKS)
    assert orientation.name == "00-orientation"
    included = [q for q in orientation.questions if q.id.startswith("p")]
    assert [q.lesson_question for q in included] == [1, 2, 3, 5]
    assert all(q == pattern.question(q.id) for q in included)
    document = yaml.safe_load((BANKS / "00-orientation.yaml").read_text())
    assert document["include"] == [{"bank": "pattern", "ids": ["p1", "p2", "p3", "p5"]}]
    assert not {q["id"] for q in document["questions"]} & set(pattern.ids)


def test_pattern_has_a_question_on_each_of_the_lessons_three_mistakes():
    pattern = banks.load("pattern", BANKS)
    # Mistake 3, both ways: the big machine wastes money at low traffic AND can still be too small.
    big_machine = pattern.question("p8")
    right = [big_machine.options[big_machine.letters.index(a)].lower() for a in big_machine.answer]
    assert any("low traffic" in r and "idle" in r for r in right) and any("high traffic" in r for r in right)
    # ... and extra cores help only a server with the workers to use them.
    assert any("--workers" in step for step in big_machine.steps)


ALL = {name: banks.load(name, BANKS) for name in banks.names(BANKS)}
LABS = {name: quiz for name, quiz in ALL.items() if name != "pattern"}


@pytest.mark.parametrize("name", sorted(ALL))
def test_ids_are_neutral_keys(name):
    """Ids are typed in answers={...} and become CSV columns: p<n> (pattern) or q<n>, never a hint."""
    for q in ALL[name].questions:
        assert re.fullmatch(r"[pq]\d+", q.id), (name, q.id)
    own = [q.id for q in ALL[name].questions if q.id.startswith("q")]
    # A lab's own question carries its position in the quiz, so the printed number and the key agree.
    assert own == [f"q{n}" for n, q in enumerate(ALL[name].questions, start=1) if q.id.startswith("q")], name


@pytest.mark.parametrize("name", sorted(ALL))
def test_the_right_option_does_not_stand_out_by_length(name):
    for q in ALL[name].questions:
        if q.kind not in ("single", "multiple"):
            continue
        lengths = [len(option) for option in q.options]
        right = {q.letters.index(a) for a in (q.answer if q.kind == "multiple" else [q.answer])}
        longest_right = max(lengths[i] for i in right)
        assert longest_right <= max(n for i, n in enumerate(lengths) if i not in right), (name, q.id, lengths)
        assert max(lengths) <= 1.6 * min(lengths), (name, q.id, lengths)


@pytest.mark.parametrize("name", sorted(ALL))
def test_the_right_letter_moves_around(name):
    letters = [q.answer for q in ALL[name].questions if q.kind == "single"]
    if len(letters) >= 3:
        assert max(letters.count(letter) for letter in set(letters)) <= len(letters) / 2 + 0.5, (name, letters)


@pytest.mark.parametrize("name", sorted(LABS))
def test_at_least_half_of_each_labs_questions_need_the_lab(name):
    """Computed questions are keyed from the learner's own saved run: no lab, no answer."""
    quiz = LABS[name]
    computed = [q.id for q in quiz.questions if q.kind == "computed"]
    assert 2 * len(computed) >= len(quiz.questions), (name, computed)


@pytest.mark.parametrize("name", sorted(ALL))
def test_every_number_says_how_precise_it_must_be(name):
    from servelab.quiz.widgets import render_question

    for n, q in enumerate(ALL[name].questions, start=1):
        if q.kind in ("numeric", "computed"):
            assert q.precision() and f"accepted {q.precision()}" in render_question(n, q), (name, q.id)


@pytest.mark.parametrize(
    ("name", "qid", "answer"),
    [
        ("01-server", "q4", 80),  # the round trip alone: the saving is 81.15 ms, and 80 is the intuitive right answer
        ("01-server", "q4", 81.2),
        ("pattern", "p9", 0.21),
        ("07-capstone", "q3", 5),
    ],
)
def test_the_intuitive_right_answer_is_accepted(name, qid, answer):
    from servelab.quiz.grading import grade

    [mark] = [m for m in grade(ALL[name], {qid: answer}).marks if m.question == qid]
    assert mark.correct


@pytest.mark.parametrize(
    ("tolerance", "unit", "says"),
    [({"abs": 0}, "replicas", "exactly"), ({"abs": 2}, "ms", "to within ±2 ms"),
     ({"rel": 0.05}, "req/s", "to within 5 %"), ({"abs": 3}, "percent", "to within ±3 percentage points"),
     ({"rel": 0.05, "abs": 0.5}, "ms", "to within 5 % or ±0.5 ms, whichever is wider")],
)
def test_precision_in_words(tolerance, unit, says):
    q = banks.Question(id="q1", difficulty="easy", kind="numeric", prompt="?", answer=1.0, tolerance=tolerance, unit=unit)
    assert q.precision() == says


def test_lab_03_has_a_question_computed_from_the_learners_run():
    load = banks.load("03", BANKS)
    assert any(q.kind == "computed" and q.compute["function"] == "p95_ms_at_highest_rate_under_slo" for q in load.questions)


def _broken(tmp_path: Path, question: dict, name: str = "broken") -> Path:
    good = {"id": "q1", "difficulty": "easy", "kind": "single", "prompt": "Which?", "options": ["a", "b"],
            "answer": "A", "steps": ["because"], "hint": "think", "mistakes": ["this"]}
    (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump({"title": "t", "questions": [{**good, **question}]}))
    return tmp_path / f"{name}.yaml"


@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        ({"answer": "C"}, "answer", "not an option"),
        ({"answer": "AB"}, "answer", "must match pattern"),
        ({"difficulty": "tricky"}, "difficulty", "must be one of"),
        ({"kind": "essay"}, "kind", "must be one of"),
        ({"hint": 5}, "hint", "must be string"),
        ({"colour": "red"}, "colour", "not a known field"),
        ({"kind": "numeric", "options": None, "answer": 3}, "tolerance", "missing"),
        ({"kind": "computed", "compute": {"function": "nope", "result": "x"}, "tolerance": {"abs": 1},
          "unit": "ms", "answer": None}, "compute.function", "unknown function"),
        ({"kind": "computed", "compute": {"function": "max_rate_under_slo", "result": "x", "args": {"slo": 5}},
          "tolerance": {"abs": 1}, "unit": "ms", "answer": None}, "compute.args", "missing a required argument: 'slo_ms'"),
    ],
)
def test_a_broken_bank_names_file_question_and_field(tmp_path, change, field, says):
    question = {k: v for k, v in change.items() if v is not None}
    path = _broken(tmp_path, question)
    document = yaml.safe_load(path.read_text())
    for key in [k for k, v in change.items() if v is None]:
        document["questions"][0].pop(key)
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(BankError) as caught:
        banks.load("broken", tmp_path)
    message = str(caught.value)
    assert str(path) in message and "question 'q1'" in message and f"field '{field}'" in message, message
    assert says in message, message


def test_missing_required_field_is_named(tmp_path):
    path = _broken(tmp_path, {})
    document = yaml.safe_load(path.read_text())
    del document["questions"][0]["steps"]
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(BankError, match=r"question 'q1': field 'steps': missing"):
        banks.load("broken", tmp_path)


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    (tmp_path / "bad.yaml").write_text("title: t\nquestions:\n  - id: [unclosed\n")
    with pytest.raises(BankError, match=r"bad\.yaml: line \d+: not valid YAML"):
        banks.load("bad", tmp_path)


def test_include_of_unknown_question_is_named(tmp_path):
    _broken(tmp_path, {}, name="base")
    (tmp_path / "lab.yaml").write_text(yaml.safe_dump({"title": "t", "include": [{"bank": "base", "ids": ["q9"]}]}))
    with pytest.raises(BankError, match=r"lab\.yaml: question 'q9': field 'include.ids': not in bank 'base'"):
        banks.load("lab", tmp_path)


def test_student_copy_has_no_keys_and_still_validates():
    for name in banks.names(BANKS):
        document = banks.student_copy(banks.read_document(BANKS / f"{name}.yaml"))
        banks.validate(document, name)
        for q in document.get("questions", ()):
            assert not set(banks.KEY_FIELDS) & set(q), (name, q["id"])
    served = banks.load("03-load", BANKS).for_students()
    banks.validate(served, "03-load (served)")
    assert all("answer" not in q and "steps" not in q for q in served["questions"])


def test_unknown_quiz_name_lists_the_available_ones():
    with pytest.raises(BankError, match="available: .*pattern"):
        banks.load("99", BANKS)
