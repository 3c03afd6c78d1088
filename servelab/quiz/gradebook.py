"""The gradebook: attempts, per-question marks, the roster and token hashes, in one SQLite file.

Self-study uses it directly (`~/.servelab/gradebook.sqlite`); the grader service uses the same
file format with a roster. Every statement is parameterized; WAL mode lets the service read
while it writes; an attempt and its marks go in one transaction, after the attempt limit is
checked inside that same transaction, so concurrent submissions can never exceed the limit or
be stored twice (a retried submission with the same id returns the attempt already stored).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from servelab.quiz.bank import Bank
from servelab.quiz.grading import Grade

STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
INSTRUCTOR = "instructor"
# A spreadsheet reads a cell starting with one of these as a formula (OWASP, "CSV Injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY,
    submission_id TEXT UNIQUE,
    student TEXT NOT NULL,
    quiz TEXT NOT NULL,
    number INTEGER NOT NULL,
    submitted_at TEXT NOT NULL,
    late INTEGER NOT NULL DEFAULT 0,
    score INTEGER NOT NULL,
    total INTEGER NOT NULL,
    UNIQUE (student, quiz, number)
);
CREATE TABLE IF NOT EXISTS marks (
    attempt_id INTEGER NOT NULL REFERENCES attempts(id),
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    correct INTEGER NOT NULL,
    PRIMARY KEY (attempt_id, question)
);
CREATE TABLE IF NOT EXISTS people (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    role TEXT NOT NULL CHECK (role IN ('student', 'instructor')),
    token_hash TEXT UNIQUE
);
"""


class AttemptLimitError(Exception):
    """The student has used every attempt allowed for this quiz."""


class RosterError(ValueError):
    """A roster file that cannot be read; names the line."""


@dataclass(frozen=True)
class Recorded:
    attempt_id: int
    number: int  # 1 for the student's first attempt at this quiz
    duplicate: bool  # True when this submission id was already stored


def spreadsheet_safe(cell: object) -> object:
    """`cell`, with a leading ' when it is text a spreadsheet would run as a formula.

    OWASP's advice for CSV exports: a roster name such as =HYPERLINK(...) then shows as text in
    Excel, LibreOffice and Google Sheets instead of running; numbers are written as they are.
    `export_csv` also quotes every text cell, so a carriage return inside one cannot start a row.
    """
    if isinstance(cell, str) and cell.startswith(FORMULA_STARTS):
        return "'" + cell
    return cell


def default_path() -> Path:
    """$SERVELAB_GRADEBOOK, else ~/.servelab/gradebook.sqlite."""
    return Path(os.environ.get("SERVELAB_GRADEBOOK") or Path.home() / ".servelab" / "gradebook.sqlite")


def hash_token(token: str) -> str:
    # Tokens are 192 random bits, so a plain SHA-256 is enough: there is nothing to brute-force.
    return hashlib.sha256(token.encode()).hexdigest()


def read_roster(path: str | Path) -> list[tuple[str, str]]:
    """(student id, name) pairs from a CSV with a `student` column and an optional `name` column."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or "student" not in reader.fieldnames:
            raise RosterError(f"{path}: the first line must be a header with a 'student' column (and optionally 'name')")
        rows = []
        for line, row in enumerate(reader, start=2):
            student = (row.get("student") or "").strip()
            if not STUDENT_ID.match(student) or student == INSTRUCTOR:
                raise RosterError(
                    f"{path}: line {line}: student id {student!r} must be 1-64 letters, digits, '.', '_', '@' or '-' "
                    f"(and not {INSTRUCTOR!r})"
                )
            rows.append((student, (row.get("name") or "").strip()))
    return rows


class Gradebook:
    """One SQLite gradebook file. Cheap to create; each call opens its own connection."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path or default_path())
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA foreign_keys=ON")
        try:
            yield db
        finally:
            db.close()

    # --- attempts -------------------------------------------------------------------------

    def record(self, grade: Grade, student: str, *, late: bool = False, limit: int | None = None,
               submission_id: str | None = None) -> Recorded:
        """Store one graded attempt; AttemptLimitError if `limit` attempts are already stored."""
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                if submission_id is not None:
                    row = db.execute(
                        "SELECT id, number FROM attempts WHERE submission_id = ? AND student = ? AND quiz = ?",
                        (submission_id, student, grade.quiz),
                    ).fetchone()
                    if row:
                        db.execute("COMMIT")
                        return Recorded(row["id"], row["number"], duplicate=True)
                used = db.execute(
                    "SELECT COUNT(*) FROM attempts WHERE student = ? AND quiz = ?", (student, grade.quiz)
                ).fetchone()[0]
                if limit is not None and used >= limit:
                    raise AttemptLimitError(
                        f"attempt limit reached: {used} of {limit} attempts at quiz {grade.quiz!r} already used; "
                        "nothing was recorded (ask your instructor if you need another attempt)"
                    )
                cursor = db.execute(
                    "INSERT INTO attempts (submission_id, student, quiz, number, submitted_at, late, score, total)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (submission_id, student, grade.quiz, used + 1, now, int(late), grade.score, grade.total),
                )
                db.executemany(
                    "INSERT INTO marks (attempt_id, question, answer, correct) VALUES (?, ?, ?, ?)",
                    [(cursor.lastrowid, m.question, json.dumps(m.answer), int(m.correct)) for m in grade.marks],
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return Recorded(cursor.lastrowid, used + 1, duplicate=False)

    def attempts(self, student: str | None = None, quiz: str | None = None) -> list[dict]:
        """Stored attempts (oldest first), each with its marks as {question: correct}."""
        clauses, params = [], []
        for column, value in (("student", student), ("quiz", quiz)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._connect() as db:
            rows = [dict(r) for r in db.execute(f"SELECT * FROM attempts {where} ORDER BY id", params)]
            for row in rows:
                marks = db.execute("SELECT question, answer, correct FROM marks WHERE attempt_id = ?", (row["id"],))
                row["marks"] = {m["question"]: bool(m["correct"]) for m in marks}
                row["late"] = bool(row["late"])
        return rows

    # --- roster and tokens ------------------------------------------------------------------

    def add_roster(self, roster: list[tuple[str, str]]) -> None:
        """Insert students (keeping any token already issued) and make sure an instructor row exists."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(
                "INSERT INTO people (id, name, role) VALUES (?, ?, 'student')"
                " ON CONFLICT(id) DO UPDATE SET name = excluded.name",
                roster,
            )
            db.execute("INSERT OR IGNORE INTO people (id, role) VALUES (?, 'instructor')", (INSTRUCTOR,))
            db.execute("COMMIT")

    def issue_tokens(self) -> dict[str, str]:
        """New tokens for everyone on the roster without one (instructor included); stores only hashes."""
        issued = {}
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            for row in db.execute("SELECT id FROM people WHERE token_hash IS NULL ORDER BY role, id").fetchall():
                token = secrets.token_urlsafe(24)
                db.execute("UPDATE people SET token_hash = ? WHERE id = ?", (hash_token(token), row["id"]))
                issued[row["id"]] = token
            db.execute("COMMIT")
        return issued

    def who(self, token: str) -> tuple[str, str] | None:
        """(id, role) of the holder of `token`, or None."""
        with self._connect() as db:
            row = db.execute("SELECT id, role FROM people WHERE token_hash = ?", (hash_token(token),)).fetchone()
        return (row["id"], row["role"]) if row else None

    def roster(self) -> list[tuple[str, str]]:
        with self._connect() as db:
            return [(r["id"], r["name"]) for r in db.execute("SELECT id, name FROM people WHERE role = 'student' ORDER BY id")]

    # --- export -----------------------------------------------------------------------------

    def export_csv(self, banks: dict[str, Bank]) -> str:
        """One row per student, one column per question (1/0 from the counted attempt) plus totals.

        The counted attempt of a quiz is the student's best (earliest among equals); the quiz's
        `attempts` column counts every stored attempt and `late` flags a late counted attempt.
        """
        attempts = self.attempts()
        students = dict(self.roster())
        for a in attempts:
            students.setdefault(a["student"], "")
        header = ["student", "name"]
        for name, bank in banks.items():
            header += [f"{name}:{qid}" for qid in bank.ids] + [f"{name}:score", f"{name}:attempts", f"{name}:late"]
        header.append("total")
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)  # text always quoted, \r included
        writer.writerow(map(spreadsheet_safe, header))
        for student in sorted(students):
            row, total = [student, students[student]], 0
            for name, bank in banks.items():
                mine = [a for a in attempts if a["student"] == student and a["quiz"] == name]
                best = max(mine, key=lambda a: (a["score"], -a["id"]), default=None)
                if best is None:
                    row += [""] * len(bank.ids) + ["", 0, ""]
                    continue
                row += [int(best["marks"].get(qid, False)) for qid in bank.ids]
                row += [best["score"], len(mine), int(best["late"])]
                total += best["score"]
            writer.writerow([spreadsheet_safe(cell) for cell in row + [total]])
        return out.getvalue()
