"""The SQLite gradebook: attempts, limits, idempotent submissions, tokens kept as hashes, export."""

from __future__ import annotations

import csv
import io
import sqlite3

import pytest
from quiz_fixtures import BANKS, write_roster

from servelab.quiz import bank as banks
from servelab.quiz.gradebook import (
    AttemptLimitError,
    Gradebook,
    RosterError,
    read_roster,
)
from servelab.quiz.grading import grade


@pytest.fixture
def pattern():
    return banks.load("pattern", BANKS)


def test_attempts_are_numbered_and_limited(tmp_path, pattern):
    book = Gradebook(tmp_path / "g.sqlite")
    marked = grade(pattern, {"p1": "C"})
    assert [book.record(marked, "ann", limit=2).number for _ in range(2)] == [1, 2]
    with pytest.raises(AttemptLimitError, match="attempt limit reached: 2 of 2 attempts at quiz 'pattern'"):
        book.record(marked, "ann", limit=2)
    assert len(book.attempts(student="ann")) == 2


def test_same_submission_id_is_stored_once(tmp_path, pattern):
    book = Gradebook(tmp_path / "g.sqlite")
    marked = grade(pattern, {})
    first = book.record(marked, "ann", submission_id="abc")
    again = book.record(marked, "ann", submission_id="abc")
    assert again.duplicate and again.attempt_id == first.attempt_id
    assert len(book.attempts()) == 1


def test_tokens_are_stored_only_as_hashes(tmp_path):
    book = Gradebook(tmp_path / "g.sqlite")
    book.add_roster(read_roster(write_roster(tmp_path / "roster.csv", ["ann", "bob"])))
    issued = book.issue_tokens()
    assert set(issued) == {"ann", "bob", "instructor"}
    assert book.who(issued["bob"]) == ("bob", "student")
    assert book.who(issued["instructor"]) == ("instructor", "instructor")
    assert book.who("not-a-token") is None
    assert book.issue_tokens() == {}  # nobody is re-issued silently
    dump = "\n".join(sqlite3.connect(tmp_path / "g.sqlite").iterdump())
    assert not any(token in dump for token in issued.values())


def test_roster_errors_name_the_line(tmp_path):
    (tmp_path / "r.csv").write_text("student\nann\nbad id\n")
    with pytest.raises(RosterError, match="line 3"):
        read_roster(tmp_path / "r.csv")


def test_export_counts_the_best_attempt_and_every_attempt(tmp_path, pattern):
    book = Gradebook(tmp_path / "g.sqlite")
    book.record(grade(pattern, {"p1": "C"}), "ann")
    book.record(grade(pattern, {"p1": "C", "p10": 3}), "ann", late=True)
    rows = list(csv.DictReader(io.StringIO(book.export_csv({"pattern": pattern}))))
    [ann] = rows
    assert ann["pattern:p1"] == "1" and ann["pattern:p10"] == "1"
    assert (ann["pattern:score"], ann["pattern:attempts"], ann["pattern:late"], ann["total"]) == ("2", "2", "1", "2")


FORMULAS = ['=HYPERLINK("http://evil/","x")', "+cmd|' /C calc'!A0", "@SUM(1+1)", "-2+3", "\tfoo", "\rbar"]


def test_export_escapes_cells_a_spreadsheet_would_run_as_formulas(tmp_path, pattern):
    """OWASP's CSV-injection rule, in the one export function both the service and the CLI call."""
    db = tmp_path / "g.sqlite"
    book = Gradebook(db)
    book.add_roster([(f"s{i}", name) for i, name in enumerate(FORMULAS)] + [("plain", "Ann O'Neil")])
    book.record(grade(pattern, {"p1": "C"}), "s0")
    text = book.export_csv({"pattern": pattern})
    rows = {row["student"]: row for row in csv.DictReader(io.StringIO(text, newline=""))}
    assert [rows[f"s{i}"]["name"] for i in range(len(FORMULAS))] == ["'" + name for name in FORMULAS]
    assert rows["plain"]["name"] == "Ann O'Neil"
    assert rows["s0"]["pattern:score"] == "1"  # numbers stay numbers


def test_cli_export_writes_the_same_escaped_csv(tmp_path, pattern):
    from quiz_fixtures import servelab

    db, roster = tmp_path / "g.sqlite", tmp_path / "roster.csv"
    roster.write_text('student,name\nann,"=HYPERLINK(""http://evil/"",""x"")"\n')
    Gradebook(db).add_roster(read_roster(roster))
    exported = servelab("grader", "export", "--db", str(db), "--bank-dir", str(BANKS), "--csv", "-")
    assert exported.returncode == 0, exported.stderr
    [ann] = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert ann["name"] == '\'=HYPERLINK("http://evil/","x")'
