"""`servelab quiz`: take a quiz in a terminal, grade an answers file, check or strip banks.

    servelab quiz take 03                      # questions one by one, input() answers, recorded
    servelab quiz grade answers.yaml           # offline: mark a file, print the score table
    servelab quiz validate                     # check every bank, errors name file, id, field
    servelab quiz student-bank --out student-quizzes   # banks without answers or worked steps
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import yaml

from servelab.quiz import bank as banks
from servelab.quiz.grading import AnswerError, computed_keys, grade, normalize
from servelab.quiz.widgets import render_question


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bank-dir", type=Path, default=None,
                        help="where the banks are (same as $SERVELAB_QUIZZES; default: the repository's quizzes/)")
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    take = sub.add_parser("take", help="answer a quiz in the terminal; the attempt is recorded like quiz.submit")
    take.add_argument("name", help="quiz name or lab number, e.g. 03 or pattern")
    take.add_argument("--student", help="who is answering (default: $SERVELAB_STUDENT or your login)")
    take.add_argument("--results", type=Path, help="your saved runs (default: $SERVELAB_RESULTS or ./results)")
    grade_ = sub.add_parser("grade", help="mark an answers file (quiz:, answers: {id: answer}) without recording")
    grade_.add_argument("answers", type=Path)
    grade_.add_argument("--results", type=Path, help="your saved runs (default: $SERVELAB_RESULTS or ./results)")
    sub.add_parser("validate", help="check every bank against the schema")
    strip = sub.add_parser("student-bank", help="write the banks without answers, steps or mistakes")
    strip.add_argument("--out", type=Path, required=True, help="directory for the student copies")


def main(args: argparse.Namespace) -> int:
    if args.bank_dir:
        os.environ["SERVELAB_QUIZZES"] = str(args.bank_dir)
    action = {"take": _take, "grade": _grade, "validate": _validate, "student-bank": _student_bank}[args.action]
    try:
        return action(args)
    except (banks.BankError, AnswerError) as exc:
        print(f"servelab quiz: {exc}", file=sys.stderr)
        return 2


def _take(args: argparse.Namespace) -> int:
    from servelab.quiz.grader_client import class_mode
    from servelab.quiz.submission import submit

    client = class_mode()
    quiz = client.bank(args.name) if client else banks.load(args.name)
    print(f"Quiz {quiz.name}: {quiz.title} ({len(quiz.questions)} questions)\n")
    answers = {}
    for n, q in enumerate(quiz.questions, start=1):
        print(render_question(n, q))
        answers[q.id] = _ask(q)
        print()
    submit(quiz.name, answers, args.student, args.results)
    return 0


def _ask(q: banks.Question) -> object:
    while True:
        try:
            raw = input("your answer (blank to skip): ")
        except EOFError:
            raise AnswerError("input ended before the quiz was finished; nothing was recorded") from None
        try:
            return normalize(q, raw)
        except AnswerError as exc:
            print(f"  {exc}")


def _grade(args: argparse.Namespace) -> int:
    document = yaml.safe_load(args.answers.read_text(encoding="utf-8"))
    if not isinstance(document, dict) or not isinstance(document.get("quiz"), str):
        raise AnswerError(f"{args.answers}: write 'quiz: <name>' and 'answers: {{question id: answer}}'")
    quiz = banks.load(document["quiz"])
    values, problems = computed_keys(quiz, args.results)
    result = grade(quiz, document.get("answers") or {}, values, problems)
    result.student = str(document.get("student", ""))
    print(result.table())
    return 0


def _validate(args: argparse.Namespace) -> int:
    found = banks.load_all()
    for name, quiz in found.items():
        print(f"{name}: {len(quiz.questions)} questions ok")
    return 0


def _student_bank(args: argparse.Namespace) -> int:
    source = banks.bank_dir()
    banks.load_all(source)  # refuse to strip a broken bank
    args.out.mkdir(parents=True, exist_ok=True)
    for name in banks.names(source):
        document = banks.student_copy(banks.read_document(source / f"{name}.yaml"))
        text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)
        (args.out / f"{name}.yaml").write_text(text, encoding="utf-8")
        print(f"{args.out / (name + '.yaml')}: answers, steps and mistakes removed")
    return 0
