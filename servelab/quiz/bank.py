"""Question banks: the YAML files in `quizzes/`, their schema, and loading them.

A bank is data, so a broken one must say exactly where it is broken: every error names the file,
the question id and the field. The same schema checks the instructor's bank (with keys) and the
student copy (keys stripped), so the grader service can hand students a bank that still loads.
"""

from __future__ import annotations

import copy
import functools
import inspect
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastjsonschema
import yaml

from servelab.core import repo

DIFFICULTIES = ("easy", "medium", "hard")
KINDS = ("single", "multiple", "numeric", "computed")
LETTERS = "ABCDEFGH"
KEY_FIELDS = ("answer", "steps", "mistakes")  # what the student copy leaves out
ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,63}$"

# libyaml's safe loader when PyYAML was built with it: same result, several times faster.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_TEXT = {"type": "string", "minLength": 1}
_TEXT_LIST = {"type": "array", "items": _TEXT, "minItems": 1}
_LETTER = {"type": "string", "pattern": f"^[{LETTERS}]$"}


def _question_schema(student_copy: bool) -> dict:
    keyed = [] if student_copy else ["steps", "hint", "mistakes"]
    answer_required = [] if student_copy else ["answer"]

    def when(kind: str, then: dict) -> dict:
        return {"if": {"properties": {"kind": {"const": kind}}}, "then": then}

    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["id", "difficulty", "kind", "prompt", *keyed],
        "properties": {
            "id": {"type": "string", "pattern": ID_PATTERN},
            "difficulty": {"enum": list(DIFFICULTIES)},
            "kind": {"enum": list(KINDS)},
            "prompt": _TEXT,
            "options": {"type": "array", "items": _TEXT, "minItems": 2, "maxItems": len(LETTERS)},
            "answer": {},
            "tolerance": {
                "type": "object",
                "additionalProperties": False,
                "minProperties": 1,
                "properties": {"abs": {"type": "number", "minimum": 0}, "rel": {"type": "number", "minimum": 0}},
            },
            "unit": _TEXT,
            "compute": {
                "type": "object",
                "additionalProperties": False,
                "required": ["function", "result"],
                "properties": {"function": _TEXT, "result": {"anyOf": [_TEXT, _TEXT_LIST]}, "args": {"type": "object"}},
            },
            "steps": _TEXT_LIST,
            "hint": _TEXT,
            "mistakes": _TEXT_LIST,
            "lesson_question": {"type": "integer", "minimum": 1},
        },
        "allOf": [
            when("single", {"required": ["options", *answer_required], "properties": {"answer": _LETTER}}),
            when(
                "multiple",
                {
                    "required": ["options", *answer_required],
                    "properties": {"answer": {"type": "array", "items": _LETTER, "minItems": 1, "uniqueItems": True}},
                },
            ),
            when("numeric", {"required": ["tolerance", "unit", *answer_required], "properties": {"answer": {"type": "number"}}}),
            when("computed", {"required": ["compute", "tolerance", "unit"], "not": {"required": ["answer"]}}),
        ],
    }


def schema(student_copy: bool = False) -> dict:
    """The JSON Schema of one bank file (instructor copy by default)."""
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "additionalProperties": False,
        "required": ["title"],
        "anyOf": [{"required": ["questions"]}, {"required": ["include"]}],
        "properties": {
            "title": _TEXT,
            "lab": _TEXT,
            "student_copy": {"type": "boolean"},
            "include": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["bank", "ids"],
                    "properties": {"bank": _TEXT, "ids": {"type": "array", "items": _TEXT, "minItems": 1}},
                },
            },
            "questions": {"type": "array", "minItems": 1, "items": _question_schema(student_copy)},
        },
    }


class BankError(ValueError):
    """A bank file that cannot be used; the message names file, question id and field."""


@dataclass(frozen=True)
class Question:
    """One question. `answer` is None in a student copy and for computed questions."""

    id: str
    difficulty: str
    kind: str
    prompt: str
    options: tuple[str, ...] = ()
    answer: Any = None
    tolerance: dict = field(default_factory=dict)
    unit: str = ""
    compute: dict | None = None
    steps: tuple[str, ...] = ()
    hint: str = ""
    mistakes: tuple[str, ...] = ()
    lesson_question: int | None = None

    @classmethod
    def from_dict(cls, d: dict) -> Question:
        answer = d.get("answer")
        return cls(
            id=d["id"],
            difficulty=d["difficulty"],
            kind=d["kind"],
            prompt=d["prompt"].strip(),
            options=tuple(d.get("options", ())),
            answer=tuple(sorted(answer)) if isinstance(answer, list) else answer,
            tolerance=dict(d.get("tolerance", {})),
            unit=d.get("unit", ""),
            compute=d.get("compute"),
            steps=tuple(s.strip() for s in d.get("steps", ())),
            hint=d.get("hint", "").strip(),
            mistakes=tuple(d.get("mistakes", ())),
            lesson_question=d.get("lesson_question"),
        )

    @property
    def letters(self) -> str:
        return LETTERS[: len(self.options)]

    def precision(self) -> str:
        """How close a numeric answer must be, in words: printed with the question, so nobody has to guess."""
        if self.kind not in ("numeric", "computed"):
            return ""
        absolute, relative = self.tolerance.get("abs"), self.tolerance.get("rel")
        points = " percentage points" if self.unit in ("percent", "%") else f" {self.unit}"
        if relative and absolute:
            return f"to within {relative * 100:g} % or ±{absolute:g}{points}, whichever is wider"
        if relative:
            return f"to within {relative * 100:g} %"
        if absolute:
            return f"to within ±{absolute:g}{points}"
        return "exactly"


@dataclass(frozen=True)
class Bank:
    """A quiz ready to show and grade: its own questions plus the ones it includes, in order."""

    name: str
    title: str
    questions: tuple[Question, ...]
    raw: dict  # the questions as dicts (includes resolved), for the student copy
    student_copy: bool = False

    def question(self, question_id: str) -> Question:
        for q in self.questions:
            if q.id == question_id:
                return q
        raise KeyError(question_id)

    @property
    def ids(self) -> list[str]:
        return [q.id for q in self.questions]

    def for_students(self) -> dict:
        """This quiz as a self-contained bank document without keys (includes resolved)."""
        return student_copy({"title": self.title, "questions": self.raw["questions"]})


def bank_dir() -> Path:
    """Where banks live: $SERVELAB_QUIZZES, else the repository's `quizzes/`, else ./quizzes."""
    if os.environ.get("SERVELAB_QUIZZES"):
        return Path(os.environ["SERVELAB_QUIZZES"])
    repo_banks = repo.ROOT / "quizzes"
    return repo_banks if repo_banks.is_dir() else Path.cwd() / "quizzes"


def names(directory: Path | None = None) -> list[str]:
    """Quiz names (file stems) in a bank directory, sorted."""
    return sorted(p.stem for p in Path(directory or bank_dir()).glob("*.yaml"))


def resolve_name(name: str, directory: Path | None = None) -> str:
    """Accept a full name ("03-load") or the lab number alone ("03", "3")."""
    available = names(directory)
    if name in available:
        return name
    if name.isdigit():
        matches = [n for n in available if n.split("-")[0] == name.zfill(2)]
        if len(matches) == 1:
            return matches[0]
    raise BankError(f"no quiz named {name!r} in {directory or bank_dir()}; available: {', '.join(available) or 'none'}")


def load(name: str, directory: Path | None = None) -> Bank:
    """Load, validate and resolve the includes of quiz `name` (a file stem or a lab number)."""
    directory = Path(directory or bank_dir())
    return _load(resolve_name(name, directory), directory, seen=())


def load_all(directory: Path | None = None) -> dict[str, Bank]:
    """Every bank in the directory, validated; one BankError listing every problem found."""
    directory = Path(directory or bank_dir())
    banks, problems = {}, []
    for name in names(directory):
        try:
            banks[name] = _load(name, directory, seen=())
        except BankError as exc:
            problems.append(str(exc))
    if problems:
        raise BankError("\n".join(problems))
    return banks


def student_copy(document: dict) -> dict:
    """A bank document with the keys (answer, steps, mistakes) taken out."""
    stripped = copy.deepcopy(document)
    stripped["student_copy"] = True
    for q in stripped.get("questions", ()):
        for key in KEY_FIELDS:
            q.pop(key, None)
    return stripped


def read_document(path: Path) -> dict:
    """Parse a bank file; YAML syntax errors name the file and line."""
    try:
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=_YAML_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise BankError(f"{path}:{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    except OSError as exc:
        raise BankError(f"{path}: cannot read: {exc.strerror}") from None
    if not isinstance(document, dict):
        raise BankError(f"{path}: a bank is a mapping with 'title' and 'questions'; found {type(document).__name__}")
    return document


def validate(document: dict, source: str = "<bank>") -> None:
    """Check one bank document against the schema and the rules a schema cannot express."""
    try:
        _validator(bool(document.get("student_copy")))(document)
    except fastjsonschema.JsonSchemaValueException as error:
        raise BankError(_describe(error, document, source)) from None
    problems = _semantic_problems(document, source)
    if problems:
        raise BankError("\n".join(problems))


@functools.cache
def _validator(student_copy: bool) -> Callable[[dict], Any]:
    # fastjsonschema compiles the schema to Python: importing `jsonschema` instead costs seconds
    # (its optional format checkers build grammars at import), on every quiz.show in a fresh kernel.
    return fastjsonschema.compile(schema(student_copy))


def _describe(error: fastjsonschema.JsonSchemaValueException, document: dict, source: str) -> str:
    """'<file>: question '<id>': field '<name>': <what is wrong>' from the validator's first error."""
    path = full_path = [int(p) if p.isdigit() else p for p in error.path[1:]]  # drop the leading "data"
    where = source
    if len(path) >= 2 and path[0] == "questions" and isinstance(path[1], int):
        where += f": question {_question_id(document, path[1])}"
        path = path[2:]
    fields = [str(p) for p in path if not isinstance(p, int)]
    if path and isinstance(path[-1], int) and fields:
        fields[-1] += f"[{path[-1]}]"
    instance = error.value if isinstance(error.value, dict) else {}
    if error.rule == "required":
        missing = [p for p in error.rule_definition if p not in instance]
        return f"{where}: field '{'.'.join(fields + missing[:1])}': missing (required)"
    if error.rule == "additionalProperties":
        allowed = sorted(_properties_at(full_path, bool(document.get("student_copy"))))
        extra = sorted(set(instance) - set(allowed))
        return f"{where}: field '{'.'.join(fields + extra[:1])}': not a known field (allowed: {', '.join(allowed)})"
    if error.rule == "anyOf" and not path:
        return f"{where}: field 'questions': missing (a bank needs 'questions', 'include' or both)"
    if error.rule == "not" and "answer" in instance:
        return f"{where}: field 'answer': a computed question takes its answer from the learner's run; remove it"
    label = ".".join(fields) or "(bank)"
    return f"{where}: field '{label}': {error.message.removeprefix(error.name).strip()}"


def _properties_at(path: list, student_copy: bool) -> set[str]:
    """Field names the schema allows at `path`."""
    node = schema(student_copy)
    for part in path:
        node = node["items"] if isinstance(part, int) else node["properties"][part]
    return set(node.get("properties", {}))


def _question_id(document: dict, index: int) -> str:
    q = document["questions"][index]
    qid = q.get("id") if isinstance(q, dict) else None
    return repr(qid) if isinstance(qid, str) else f"#{index + 1} (no id)"


def _semantic_problems(document: dict, source: str) -> list[str]:
    from servelab.quiz.computed import FUNCTIONS

    problems, seen = [], set()
    for q in document.get("questions", ()):
        where = f"{source}: question {q['id']!r}"
        if q["id"] in seen:
            problems.append(f"{where}: field 'id': used twice in this bank")
        seen.add(q["id"])
        answer = q.get("answer")
        letters = LETTERS[: len(q.get("options", ()))]
        chosen = answer if isinstance(answer, list) else [answer] if isinstance(answer, str) else []
        for letter in chosen:
            if letter not in letters:
                problems.append(f"{where}: field 'answer': {letter!r} is not an option (options are {', '.join(letters)})")
        if q["kind"] in ("numeric", "computed") and "options" in q:
            problems.append(f"{where}: field 'options': a {q['kind']} question has no options")
        if q["kind"] == "computed":
            problems += _compute_problems(q["compute"], where, FUNCTIONS)
    return problems


def _compute_problems(compute: dict, where: str, functions: dict[str, Callable[..., float]]) -> list[str]:
    """A computed question's function must exist and accept its results and args as written."""
    function = functions.get(compute["function"])
    if function is None:
        return [f"{where}: field 'compute.function': unknown function {compute['function']!r} "
                f"(known: {', '.join(sorted(functions))})"]
    results = [compute["result"]] if isinstance(compute["result"], str) else compute["result"]
    try:
        inspect.signature(function).bind(*results, **compute.get("args", {}))
    except TypeError as error:
        return [f"{where}: field 'compute.args': {compute['function']}(results, args) does not fit: {error}"]
    return []


def _load(name: str, directory: Path, seen: tuple[str, ...]) -> Bank:
    if name in seen:
        raise BankError(f"{directory / (name + '.yaml')}: includes itself through {' -> '.join(seen + (name,))}")
    path = directory / f"{name}.yaml"
    document = read_document(path)
    validate(document, str(path))
    raw_questions = [*_included(document, path, directory, seen + (name,)), *document.get("questions", ())]
    ids = [q["id"] for q in raw_questions]
    clashes = sorted({i for i in ids if ids.count(i) > 1})
    if clashes:
        raise BankError(f"{path}: question {clashes[0]!r}: field 'id': appears both here and in an included bank")
    return Bank(
        name=name,
        title=document["title"],
        questions=tuple(Question.from_dict(q) for q in raw_questions),
        raw={"questions": raw_questions},
        student_copy=bool(document.get("student_copy")),
    )


def _included(document: dict, path: Path, directory: Path, seen: tuple[str, ...]) -> list[dict]:
    questions = []
    for n, include in enumerate(document.get("include", ()), start=1):
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", include["bank"]) or not (directory / f"{include['bank']}.yaml").is_file():
            raise BankError(f"{path}: include #{n}: field 'bank': no bank named {include['bank']!r} in {directory}")
        other = _load(include["bank"], directory, seen)
        by_id = {q["id"]: q for q in other.raw["questions"]}
        for qid in include["ids"]:
            if qid not in by_id:
                raise BankError(f"{path}: question {qid!r}: field 'include.ids': not in bank {include['bank']!r}")
            questions.append(by_id[qid])
    return questions
