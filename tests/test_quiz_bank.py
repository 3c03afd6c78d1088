"""Banks: every shipped bank validates, the pattern quiz mirrors the lesson, broken banks say where."""

from __future__ import annotations

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
    assert all(q == pattern.question(q.id) for q in orientation.questions)
    assert "questions" not in yaml.safe_load((BANKS / "00-orientation.yaml").read_text())


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
