"""`servelab quiz` and `servelab grader` command lines (run in-process through servelab.cli.main)."""

from __future__ import annotations

import io
import sqlite3

import numpy as np
import pytest
import yaml
from quiz_fixtures import BANKS, read_tokens, run_cli, write_roster

from servelab.quiz import bank as banks


@pytest.fixture(autouse=True)
def local_mode(monkeypatch, tmp_path):
    monkeypatch.setenv("SERVELAB_QUIZZES", str(BANKS))
    monkeypatch.setenv("SERVELAB_GRADEBOOK", str(tmp_path / "g.sqlite"))
    for name in ("SERVELAB_GRADER_URL", "SERVELAB_TOKEN"):
        monkeypatch.delenv(name, raising=False)


def test_grade_an_answers_file_offline(tmp_path, capsys):
    answers = tmp_path / "answers.yaml"
    answers.write_text(yaml.safe_dump({"quiz": "02", "student": "ann", "answers": {"q1": "B", "q3": 10}}))
    code, out, err = run_cli(capsys, "quiz", "grade", str(answers))
    assert code == 0, err
    assert "quiz 02-deploy - ann" in out and "score: 2/8" in out
    assert not (tmp_path / "g.sqlite").exists()  # grading a file records nothing


def test_grade_names_an_unreadable_answer(tmp_path, capsys):
    answers = tmp_path / "answers.yaml"
    answers.write_text(yaml.safe_dump({"quiz": "02-deploy", "answers": {"q1": "Q"}}))
    code, _, err = run_cli(capsys, "quiz", "grade", str(answers))
    assert code == 2 and "question 'q1': answer with one letter" in err


def test_take_records_in_the_local_gradebook(tmp_path, capsys, monkeypatch):
    """The lab 00 quiz in a terminal: four letters, then four numbers read off the learner's saved latencies."""
    results = tmp_path / "results"
    (results / "00-orientation").mkdir(parents=True)
    latencies = np.r_[np.full(90, 20.0), np.full(10, 100.0)]
    np.savetxt(results / "00-orientation" / "in-process-us.txt", latencies)
    monkeypatch.setenv("SERVELAB_STUDENT", "cli")
    monkeypatch.setattr("sys.stdin", io.StringIO("C\nB\nA\nA\n20\n100\n5\n10\n"))
    code, out, err = run_cli(capsys, "quiz", "take", "00", "--results", str(results))
    assert code == 0, err
    assert "score: 8/8" in out
    assert sqlite3.connect(tmp_path / "g.sqlite").execute("SELECT student, score FROM attempts").fetchall() == [("cli", 8)]


def test_validate_reports_a_broken_bank(tmp_path, capsys):
    (tmp_path / "x.yaml").write_text("title: t\nquestions:\n  - id: q1\n    kind: single\n")
    code, _, err = run_cli(capsys, "quiz", "--bank-dir", str(tmp_path), "validate")
    assert code == 2 and "x.yaml: question 'q1': field '" in err and "missing (required)" in err
    (tmp_path / "x.yaml").write_text("title: t\n")
    assert "field 'questions': missing" in run_cli(capsys, "quiz", "--bank-dir", str(tmp_path), "validate")[2]


def test_validate_lists_the_shipped_banks(capsys):
    code, out, _ = run_cli(capsys, "quiz", "validate")
    assert code == 0 and "pattern: 10 questions ok" in out and "03-load: 9 questions ok" in out


def test_student_bank_strips_the_keys(tmp_path, capsys):
    code, _, err = run_cli(capsys, "quiz", "student-bank", "--out", str(tmp_path / "student"))
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "student").iterdir()) == sorted(p.name for p in BANKS.glob("*.yaml"))
    for path in (tmp_path / "student").glob("*.yaml"):
        document = yaml.safe_load(path.read_text())
        assert document["student_copy"] is True
        assert not any({"answer", "steps", "mistakes"} & set(q) for q in document.get("questions", ()))
    assert len(banks.load("00-orientation", tmp_path / "student").questions) == 8


def test_tokens_are_printed_once_and_only_hashes_kept(tmp_path, capsys):
    roster, db = write_roster(tmp_path / "roster.csv", ["ann", "bob"]), tmp_path / "class.sqlite"
    code, out, err = run_cli(capsys, "grader", "tokens", str(roster), "--db", str(db), "--out", str(tmp_path / "tokens.csv"))
    assert code == 0, err
    tokens = read_tokens(tmp_path / "tokens.csv")
    assert set(tokens) == {"ann", "bob", "instructor"} and (tmp_path / "tokens.csv").stat().st_mode & 0o077 == 0
    assert all(f"{who},{token}" in out for who, token in tokens.items())
    stored = sqlite3.connect(db).execute("SELECT token_hash FROM people").fetchall()
    assert not set(tokens.values()) & {h for (h,) in stored}
    code, out, err = run_cli(capsys, "grader", "tokens", str(roster), "--db", str(db))
    assert out == "" and "0 new token(s)" in err


def test_grader_refuses_a_bad_roster_and_a_due_date_for_an_unknown_quiz(tmp_path, capsys):
    (tmp_path / "roster.csv").write_text("name\nann\n")
    code, _, err = run_cli(capsys, "grader", "tokens", str(tmp_path / "roster.csv"), "--db", str(tmp_path / "c.sqlite"))
    assert code == 2 and "'student' column" in err
    code, _, err = run_cli(capsys, "grader", "serve", "--db", str(tmp_path / "c.sqlite"), "--due", "99-x=2026-01-01T00:00:00Z")
    assert code == 2 and "--due names quiz '99-x'" in err
